/* SPDX-License-Identifier: MIT */
/*
 * Flame graphs over in-memory stacks: a trie of frames with sample counts, written out as
 * Brendan Gregg's folded text, a speedscope JSON file, or a standalone interactive SVG.
 *
 * Frames are strings, root first, formatted by the caller (for Python frames
 * "qualname (file:line)"). Identical prefixes are merged; every output walks the trie depth
 * first with siblings in byte order of their names, so output is deterministic whatever the
 * insertion order. Names are stored sanitised: invalid UTF-8 bytes and control characters
 * become '?', so every output is valid UTF-8/XML/JSON.
 *
 * Not thread-safe; a struct tg_fg must not change while an iterator or a writer uses it.
 */
#ifndef TG_FLAMEGRAPH_H
#define TG_FLAMEGRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct tg_fg;
struct tg_fg_iter;

/* An empty flame graph, or NULL with errno = ENOMEM. */
struct tg_fg *tg_fg__new(void);
/* Free fg and everything it owns. Accepts NULL. */
void tg_fg__free(struct tg_fg *fg);

/*
 * Add count samples of the stack frames[0..nframes-1] (frames[0] is the root, the outermost
 * call). Names are copied. count == 0 is a no-op that returns 0.
 * Returns 0, -EINVAL (fg or frames NULL, nframes == 0 or > UINT32_MAX, a NULL or empty name),
 * -EOVERFLOW (the total would exceed UINT64_MAX) or -ENOMEM (the graph may then hold the path
 * with no samples, which is invisible in every output).
 */
int tg_fg__add(struct tg_fg *fg, const char *const *frames, size_t nframes, uint64_t count);

/*
 * Parse one folded line "root;child;leaf 42" (a trailing "\n" or "\r\n" is allowed; the count
 * is after the last space) and add it. Returns 0, -EINVAL (no count, a count that is not a
 * decimal number, an empty frame such as "a;;b", an empty stack) or the errors of tg_fg__add.
 */
int tg_fg__add_folded_line(struct tg_fg *fg, const char *line);

/* Sum of all counts added. 0 for NULL. */
uint64_t tg_fg__total(const struct tg_fg *fg);
/* Number of distinct frame names, and of trie nodes (distinct stack prefixes, root excluded). */
size_t tg_fg__nnames(const struct tg_fg *fg);
size_t tg_fg__nnodes(const struct tg_fg *fg);
/* Deepest stack added (frames), 0 when empty. */
size_t tg_fg__max_depth(const struct tg_fg *fg);

/*
 * Iterate over the distinct stacks that have samples ending exactly at their last frame, in
 * output order (depth first, siblings sorted by name). NULL with errno set (ENOMEM, EINVAL).
 */
struct tg_fg_iter *tg_fg_iter__new(const struct tg_fg *fg);
/*
 * Next stack: returns 1 with *frames (root first, valid until the next call or free),
 * *nframes and *count set, or 0 at the end (and every later call). Any out pointer may be NULL.
 */
int tg_fg_iter__next(struct tg_fg_iter *it, const char *const **frames, size_t *nframes,
		     uint64_t *count);
/* Accepts NULL. */
void tg_fg_iter__free(struct tg_fg_iter *it);

/*
 * Write the folded text: one line "root;child;leaf count\n" per iterator stack, in iterator
 * order (this is `LC_ALL=C sort` order unless names hold bytes below ';'). In names, ';'
 * becomes ':' so each line reads back as the same stack. Returns 0, -EINVAL, -ENOMEM or -EIO.
 */
int tg_fg__write_folded(const struct tg_fg *fg, FILE *out);

/*
 * Write a speedscope file (https://www.speedscope.app/file-format-schema.json) with one
 * "sampled" profile named name (NULL: "timeglass"), unit "none": shared.frames holds every
 * distinct name (a name shaped "qualname (file:line)" is split into name, file and line),
 * samples[i] the frame indices of stack i root first and weights[i] its count, in iterator
 * order; endValue is the total. Returns 0, -EINVAL, -ENOMEM or -EIO.
 */
int tg_fg__write_speedscope(const struct tg_fg *fg, FILE *out, const char *name);

struct tg_fg_svg_opts {
	const char *title;     /* NULL: "Flame Graph" */
	const char *subtitle;  /* shown after "N samples"; NULL: none */
	unsigned width;	       /* image width in px; 0: 1200 */
	unsigned frame_height; /* px per stack level; 0: 16 */
	bool icicle;	       /* root at the top instead of the bottom */
};

/*
 * Write a standalone SVG flame graph: one box per trie node, width proportional to its
 * samples (boxes under 0.1 % of the total or 1 px are left out with their descendants),
 * coloured by a stable hash of the function name, labelled (truncated with ".."), with a
 * "<title>" tooltip "name — N samples (p %)". Embedded JavaScript (optional: the static
 * image is complete without it) adds click-to-zoom, reset (background, "Reset zoom", Esc)
 * and regex search ("Search", Ctrl-F) with the matched percentage. An empty graph gives a
 * valid SVG that says "no samples". opts may be NULL. Returns 0, -EINVAL, -ENOMEM or -EIO.
 */
int tg_fg__write_svg(const struct tg_fg *fg, FILE *out, const struct tg_fg_svg_opts *opts);

#endif
