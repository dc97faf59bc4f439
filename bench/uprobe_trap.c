/* SPDX-License-Identifier: MIT */
/*
 * What a uprobe hit costs here, by the instruction it is placed on: the
 * kernel emulates some (push, call, jmp, nop) and single-steps the others
 * out of line (sub, mov, endbr64, ...). Each function below starts with one
 * such instruction; main calls each N times and prints ns per call. Run it
 * once bare and once with a uprobe on every function whose program only
 * counts, e.g.
 *
 *   build/uprobe_trap
 *   bpftrace -e 'uprobe:build/uprobe_trap:f_* { @ = count(); }' -c build/uprobe_trap
 *
 * (bpftrace: apt-get install bpftrace; any uprobe tool does.)
 *
 * The difference is the trap plus a minimal program (docs/performance.md).
 * Each line also shows the function's first byte as it is at the end: a
 * kernel with optimized uprobes (6.18 here) rewrites a probed 5-byte nop
 * into a call (0xe8) to a "[uprobes-trampoline]" page that enters the kernel
 * through the uprobe syscall instead of the int3 trap; the others keep the
 * trap (0xcc) while probed, their own byte when not.
 * x86-64 only.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define N 200000

long f_push(long x);
long f_call(long x);
long f_jmp(long x);
long f_nop5(long x);
long f_sub(long x);
long f_mov(long x);
long f_endbr(long x);

/* Each returns x + 1 after its first instruction. */
#define FN(name, body)                                                                             \
	".globl " #name "\n.type " #name ", @function\n" #name ":\n" body "\n.size " #name         \
	", .-" #name "\n"
__asm__(".text\n" FN(f_push, "push %rbx\n pop %rbx\n lea 1(%rdi), %rax\n ret")
	    FN(f_call, "call 1f\n lea 1(%rdi), %rax\n ret\n 1: ret")
		FN(f_jmp, "jmp 2f\n 2: lea 1(%rdi), %rax\n ret")
		    FN(f_nop5, ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n lea 1(%rdi), %rax\n ret")
			FN(f_sub, "sub $8, %rsp\n add $8, %rsp\n lea 1(%rdi), %rax\n ret")
			    FN(f_mov, "mov %rdi, %rax\n lea 1(%rdi), %rax\n ret")
				FN(f_endbr, "endbr64\n lea 1(%rdi), %rax\n ret"));

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(void)
{
	static const struct {
		const char *name;
		long (*fn)(long);
	} fns[] = {{"push", f_push}, {"call", f_call}, {"jmp", f_jmp},	    {"nop5", f_nop5},
		   {"sub", f_sub},   {"mov", f_mov},   {"endbr64", f_endbr}};
	long sum = 0;

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		double t0 = now_ns();

		unsigned char first;
		uintptr_t code;

		for (long k = 0; k < N; k++)
			sum += fns[i].fn(k);
		printf("%-8s %8.0f ns per call", fns[i].name, (now_ns() - t0) / N);
		memcpy(&code, &fns[i].fn, sizeof(code)); /* the function's address */
		memcpy(&first, (const void *)code, 1);
		printf("  first byte now 0x%02x%s\n", first,
		       first == 0xe8 && fns[i].fn == f_nop5 ? " (optimized: a call)" : "");
	}
	return sum == 0; /* keep the calls */
}
