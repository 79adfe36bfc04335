/* Models hardened_malloc's test/malloc_zero_different.c: two malloc(0) in a row, neither freed.
 * Expected: two different pointers (exit 0; exit 1 if they are equal). */
#include "probe.h"

int main(void)
{
	void *first = call_malloc(0), *second = call_malloc(0);
	return first == second;
}
