/* malloc_cxx_local: a C program linked with libosmem-malloc.so (no C++ runtime at start-up) loads C++ code with
 * RTLD_LOCAL (build/tests/cxx_local.so, from tests/cxx_local.cpp), as Python loads C++ extension modules.
 *
 * Hazard: osmem's operator new serves that code, but the C++ runtime is in no global scope, so the weak references
 * osmem uses to reach std::get_new_handler and std::__throw_bad_alloc are NULL. A huge new must still call the
 * new_handler and throw std::bad_alloc (osmem finds the runtime where it was loaded), not abort.
 * Prints `PASS cxx_local/<check>` or `FAIL cxx_local/<check>: why`. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

int main(void)
{
	tu_catch_crashes();
	char path[4096];
	ssize_t k = readlink("/proc/self/exe", path, sizeof path - 32);
	if (k <= 0) {
		printf("FAIL cxx_local/start: cannot read /proc/self/exe\n");
		return 1;
	}
	path[k] = 0;
	strcpy(strrchr(path, '/'), "/cxx_local.so");
	if (dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv")) {
		printf("FAIL cxx_local/start: a C++ runtime is already in the global scope: nothing to test\n");
		return 1;
	}
	if (!dlsym(RTLD_DEFAULT, "_Znwm")) {
		printf("FAIL cxx_local/start: libosmem-malloc.so exports no operator new\n");
		return 1;
	}
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		printf("FAIL cxx_local/start: dlopen %s: %s\n", path, dlerror());
		return 1;
	}
	const char *(*check)(int, const char **);
	*(void **)&check = dlsym(h, "cxx_local_check");
	if (!check || dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv")) {
		printf("FAIL cxx_local/start: %s\n", check ? "the C++ runtime was loaded globally" : "no cxx_local_check");
		return 1;
	}
	int fails = 0;
	static char name_buf[128];
	for (int i = 0;; i++) {
		const char *name;
		snprintf(name_buf, sizeof name_buf, "cxx_local/check %d", i);
		tu_test_name = name_buf;
		const char *why = check(i, &name);
		if (!name)
			break;
		if (why) {
			printf("FAIL cxx_local/%s: %s\n", name, why);
			fails++;
		} else {
			printf("PASS cxx_local/%s\n", name);
		}
		fflush(stdout);
	}
	/* also what links this program to libosmem-malloc.so (the linker drops a library nothing refers to) */
	if (os_heap_check() != 0) {
		printf("FAIL cxx_local/heap_check: os_heap_check failed after the C++ code ran\n");
		fails++;
	} else {
		printf("PASS cxx_local/heap_check\n");
	}
	return fails ? 1 : 0;
}
