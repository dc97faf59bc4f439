/* SPDX-License-Identifier: MIT */
/* A shared library for tests/unit/test_pltcalls.c: four calls of puts()
 * through its PLT (two calls and one that -O2 makes a tail jump in C, and
 * one in tg_fixture_named, written out so that the load of the string
 * "tg.fixture.named" comes right after its call); putchar() is imported (its
 * address taken) but never called. x86-64 only, like the project. */
#include <stdio.h>

int tg_fixture_one(const char *s);
int tg_fixture_two(const char *s);
void tg_fixture_tail(const char *s);
extern int (*tg_fixture_putchar)(int);

int (*tg_fixture_putchar)(int) = putchar;

__attribute__((noinline)) int tg_fixture_one(const char *s)
{
	return puts(s) + 1;
}

__attribute__((noinline)) int tg_fixture_two(const char *s)
{
	return puts(s) > 0 ? 2 : 3;
}

void tg_fixture_tail(const char *s)
{
	puts(s);
}

__asm__(".text\n"
	".globl tg_fixture_named\n"
	".type tg_fixture_named, @function\n"
	"tg_fixture_named:\n"
	"	push %rbx\n"
	"	call puts@PLT\n"
	"	lea tg_fixture_name(%rip), %rdi\n"
	"	pop %rbx\n"
	"	ret\n"
	".size tg_fixture_named, .-tg_fixture_named\n"
	".section .rodata\n"
	"tg_fixture_name: .asciz \"tg.fixture.named\"\n"
	".text\n");
