/* The bounds of the inline 8-bit coverage counters (the linker's __start/__stop symbols of __sancov_cntrs), for
 * fuzz_corrupt, which carries a child's counters back to the parent. Built WITHOUT coverage instrumentation: a
 * translation unit that is instrumented and also names these symbols gets a module constructor that registers an
 * empty range with libFuzzer (clang 14), and the harness loses all coverage. */
#include <stddef.h>
#include <stdint.h>

extern uint8_t __start___sancov_cntrs[];
extern uint8_t __stop___sancov_cntrs[];

uint8_t *fz_cntrs_start(size_t *n);

uint8_t *fz_cntrs_start(size_t *n)
{
	*n = (size_t)(__stop___sancov_cntrs - __start___sancov_cntrs);
	return __start___sancov_cntrs;
}
