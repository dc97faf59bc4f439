/* SPDX-License-Identifier: MIT */
/*
 * A shared library shaped like a stripped CET build of CPython's context.c
 * (`-fcf-protection`: every function starts with endbr64), for
 * tests/unit/test_pyctx.c:
 *   - PyContext_Enter / PyContext_Exit: exported wrappers that load the
 *     thread state and tail-jump to the internal functions (local symbols:
 *     not in .dynsym, as in a stripped build);
 *   - PyContext_CopyCurrent: tail-jumps to the internal context_new_from_vars,
 *     which makes `call` with the new Context in rdi.
 *   - SSL_read_ex / SSL_write_ex as OpenSSL 3 lays them out, for
 *     user/tlssites.c.
 * tg_fx_* symbols mark the internal functions so the test can locate them
 * (hidden: in .symtab only, and called directly, not through the PLT).
 * Never run: only read. x86-64 only, like the project.
 */
#define FN(name, body)                                                                             \
	".type " #name ", @function\n" #name ":\n" body "\n.size " #name ", .-" #name "\n"

__asm__(".data\n"
	"tg_fx_runtime: .quad 0\n"
	".text\n"
	".globl PyContext_Enter\n"
	".globl PyContext_Exit\n"
	".globl PyContext_CopyCurrent\n"
	".globl tg_fx_enter\n"
	".hidden tg_fx_enter\n"
	".globl tg_fx_exit\n"
	".hidden tg_fx_exit\n"
	".globl tg_fx_new_from_vars\n"
	".hidden tg_fx_new_from_vars\n" FN(
	    PyContext_Enter,
	    "endbr64\n mov %rdi, %rsi\n mov tg_fx_runtime(%rip), %rdi\n {disp32} jmp tg_fx_enter")
	    FN(PyContext_Exit,
	       "endbr64\n mov %rdi, %rsi\n mov tg_fx_runtime(%rip), %rdi\n {disp32} jmp tg_fx_exit")
		FN(PyContext_CopyCurrent, "endbr64\n push %rsi\n mov 0x18(%rdi), %rdi\n pop %rsi\n"
					  " {disp32} jmp tg_fx_new_from_vars")
		    FN(tg_fx_enter, "endbr64\n push %rcx\n mov %rsi, 0xe0(%rdi)\n pop %rcx\n"
				    " xor %eax, %eax\n ret")
			FN(tg_fx_exit, "endbr64\n push %rcx\n movq $0, 0xe0(%rdi)\n pop %rcx\n"
				       " xor %eax, %eax\n ret")
			    FN(tg_fx_new_from_vars, "endbr64\n push %rbx\n mov %rdi, %rbx\n"
						    " call tg_fx_alloc\n mov %rax, %rdi\n"
						    " call tg_fx_alloc\n pop %rbx\n ret")
				FN(tg_fx_alloc, "endbr64\n xor %eax, %eax\n ret"));

/* OpenSSL 3's exported SSL_read_ex / SSL_write_ex as a CET build lays them
 * out: `endbr64; sub $8,%rsp; call internal`, the internal function opening
 * with endbr64 then a push (user/tlssites.c). */
__asm__(".text\n"
	".globl SSL_read_ex\n"
	".globl SSL_write_ex\n"
	".globl tg_fx_read_internal\n"
	".hidden tg_fx_read_internal\n"
	".globl tg_fx_write_internal\n"
	".hidden tg_fx_write_internal\n" FN(
	    SSL_read_ex,
	    "endbr64\n sub $8, %rsp\n {disp32} call tg_fx_read_internal\n add $8, %rsp\n ret")
	    FN(SSL_write_ex,
	       "endbr64\n sub $8, %rsp\n {disp32} call tg_fx_write_internal\n add $8, %rsp\n ret")
		FN(tg_fx_read_internal, "endbr64\n push %r12\n xor %eax, %eax\n pop %r12\n ret")
		    FN(tg_fx_write_internal,
		       "endbr64\n push %r12\n xor %eax, %eax\n pop %r12\n ret"));
