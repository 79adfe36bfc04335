/* cxx_local.so: C++ code that malloc_cxx_local.c (a C program: no C++ runtime of its own) loads with RTLD_LOCAL,
 * as Python loads a C++ extension module. Its libstdc++ is then in no global scope: osmem's weak references to
 * std::get_new_handler and std::__throw_bad_alloc were resolved (to nothing) before it arrived, yet operator new
 * is osmem's, and must still call the handler and throw std::bad_alloc.
 * cxx_local_check(i, &name): runs check i; returns NULL when it holds, else why; name NULL past the last one. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <new>
#include <string>
#include <vector>

static void *(*volatile v_new)(std::size_t) = ::operator new;
static void *(*volatile v_new_al_nt)(std::size_t, std::align_val_t, const std::nothrow_t &) noexcept = ::operator new;
static void *(*volatile v_new_arr_nt)(std::size_t, const std::nothrow_t &) noexcept = ::operator new[];
static void (*volatile v_del_sz)(void *, std::size_t) noexcept = ::operator delete;

static char msg[256];
static int calls;
static void counting_handler()
{
	if (++calls == 3)
		std::set_new_handler(nullptr);
}

static const char *new_is_osmem()
{
	Dl_info info;
	if (!dladdr((void *)v_new, &info) || !info.dli_fname || !strstr(info.dli_fname, "libosmem-malloc.so"))
		return "operator new, as this library sees it, is not libosmem-malloc.so's";
	return nullptr;
}

static const char *throwing_new_throws_bad_alloc()
{
	try {
		void *p = v_new(SIZE_MAX / 2);
		snprintf(msg, sizeof msg, "operator new(SIZE_MAX / 2) returned %p", p);
		return msg;
	} catch (const std::bad_alloc &) {
		return nullptr;
	}
}

static const char *new_handler_called_until_removed()
{
	calls = 0;
	std::set_new_handler(counting_handler);
	bool threw = false;
	try {
		(void)v_new(SIZE_MAX / 2);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	std::set_new_handler(nullptr);
	snprintf(msg, sizeof msg, "threw: %d, handler calls: %d (expected 1, 3)", threw, calls);
	return threw && calls == 3 ? nullptr : msg;
}

static const char *nothrow_with_handler_returns_null()
{
	for (int k = 0; k < 2; k++) {
		calls = 0;
		std::set_new_handler(counting_handler);
		void *p = k ? v_new_al_nt(SIZE_MAX / 2, std::align_val_t(64), std::nothrow)
			    : v_new_arr_nt(SIZE_MAX / 2, std::nothrow);
		std::set_new_handler(nullptr);
		snprintf(msg, sizeof msg, "%s: returned %p, handler calls: %d (expected nullptr, 3)",
			 k ? "new(align, nothrow)" : "new[](nothrow)", p, calls);
		if (p || calls != 3)
			return msg;
	}
	return nullptr;
}

static const char *containers_work()
{
	std::vector<std::string> v;
	for (int i = 0; i < 1000; i++)
		v.push_back(std::string((size_t)(i % 200), (char)('a' + i % 26)));
	size_t sum = 0;
	for (auto &s : v)
		sum += s.size();
	void *p = v_new(100);
	v_del_sz(p, 100);
	return sum == 99500 ? nullptr : "the strings' sizes do not add up";
}

extern "C" const char *cxx_local_check(int i, const char **name)
{
	static const struct { const char *name; const char *(*fn)(); } checks[] = {
		{ "new_is_osmem", new_is_osmem },
		{ "throwing_new_throws_bad_alloc", throwing_new_throws_bad_alloc },
		{ "new_handler_called_until_removed", new_handler_called_until_removed },
		{ "nothrow_with_handler_returns_null", nothrow_with_handler_returns_null },
		{ "containers_work", containers_work },
	};
	if (i < 0 || (size_t)i >= sizeof checks / sizeof checks[0]) {
		*name = nullptr;
		return nullptr;
	}
	*name = checks[i].name;
	return checks[i].fn();
}
