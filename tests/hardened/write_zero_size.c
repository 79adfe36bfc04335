/* Models hardened_malloc's test/write_zero_size.c: one byte written through the pointer malloc(0) returned.
 * Expected: the write faults. */
#include "probe.h"

int main(void)
{
	volatile char *none = call_malloc(0);
	if (!none)
		return SETUP_FAILED;
	*none = 5;
	return 0;
}
