/* Models hardened_malloc's test/large_array_growth.c: a block grown by realloc 20 times, from 256 KiB by half its
 * size each time (to about 567 MiB), every byte written after each step. Expected: exit 0. */
#include "probe.h"

int main(void)
{
	char *array = NULL;
	size_t size = 256 * 1024;
	for (int step = 0; step < 20; step++) {
		array = call_realloc(array, size);
		if (!array)
			return 1;
		memset(array, 'a', size);
		size += size / 2;
	}
	return 0;
}
