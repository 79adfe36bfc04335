/* osmem: which shared object serves each allocation function in this process.

   tests/test_glibc.py runs this under the same LD_PRELOAD as glibc's tests and
   checks that every function the tests call comes from libosmem-malloc.so: a
   function the library does not export would silently fall through to glibc's
   own malloc, and that test would then exercise glibc instead of osmem.
   Prints one line per name given: "NAME PATH", or "NAME -" when unresolved. */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		void *fn = dlsym(RTLD_DEFAULT, argv[i]);
		Dl_info info;
		if (fn && dladdr(fn, &info) && info.dli_fname)
			printf("%s %s\n", argv[i], info.dli_fname);
		else
			printf("%s -\n", argv[i]);
	}
	return 0;
}
