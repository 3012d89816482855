# A stand-in for Windows' bcryptprimitives.dll, which Wine 8.0 lacks and from
# which deno.exe imports one function. Test-only: see tests/windows/run.sh.
#
#   BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData);
#
# Windows' ProcessPrng always returns TRUE. This one fills the buffer with
# advapi32!SystemFunction036 (RtlGenRandom):
#
#   BOOLEAN WINAPI SystemFunction036(PVOID RandomBuffer, ULONG RandomBufferLength);
#
# Both take their arguments in rcx and rdx (Microsoft x64 calling convention),
# so they pass straight through. RtlGenRandom takes a 32-bit length: larger
# requests are split into chunks of at most 2^31 bytes.

        .text

# The DLL's entry point: nothing to set up, so every notification succeeds.
#   BOOL WINAPI DllMainCRTStartup(HINSTANCE hinstDLL, DWORD fdwReason, LPVOID lpvReserved);
        .globl  DllMainCRTStartup
        .def    DllMainCRTStartup; .scl 2; .type 32; .endef
DllMainCRTStartup:
        movl    $1, %eax
        ret

        .globl  ProcessPrng
        .def    ProcessPrng; .scl 2; .type 32; .endef
ProcessPrng:
        pushq   %rsi                    # callee-saved: buffer cursor
        pushq   %rdi                    # callee-saved: bytes left
        subq    $40, %rsp               # 32 bytes shadow space + 8: rsp is 16-aligned at the call
        movq    %rcx, %rsi
        movq    %rdx, %rdi
1:
        testq   %rdi, %rdi
        jz      2f
        movq    %rdi, %rdx
        movl    $0x80000000, %eax
        cmpq    %rax, %rdx
        cmova   %rax, %rdx              # chunk = min(left, 2^31)
        movq    %rsi, %rcx
        addq    %rdx, %rsi
        subq    %rdx, %rdi
        call    *__imp_SystemFunction036(%rip)
        jmp     1b
2:
        movl    $1, %eax                # TRUE, as on Windows
        addq    $40, %rsp
        popq    %rdi
        popq    %rsi
        ret
