/* Models hardened_malloc's test/read_zero_size.c: one byte read through the pointer malloc(0) returned (and
 * printed). Expected: the read faults. */
#include "probe.h"

int main(void)
{
	volatile char *none = call_malloc(0);
	if (!none)
		return SETUP_FAILED;
	printf("%c\n", *none);
	return 0;
}
