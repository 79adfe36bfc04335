# osmem: GNU make. `make` builds the libraries, `make test` runs every test, `make bench` the benchmarks.
CC      ?= cc
CFLAGS  ?= -O2 -g
SAN     ?=
BUILD   ?= build
PREFIX  ?= /usr/local

WARN     := -std=c11 -Wall -Wextra -Werror
LIBFLAGS := $(WARN) -fPIC -fvisibility=hidden -Iinclude $(SAN)
TESTFLAGS:= $(WARN) -D_GNU_SOURCE -Iinclude -Isrc $(SAN)

CORE_SRC := src/os.c src/trace.c src/index.c src/mapset.c src/heap.c src/huge.c src/options.c src/check.c src/lock.c src/osmem.c src/stats.c src/dump.c
CORE_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o)
# libosmem-malloc: the same core built with OSMEM_DROPIN (16-byte granule, profiles), plus the malloc family
MALLOC_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/obj-malloc/%.o) $(BUILD)/obj-malloc/override.o $(BUILD)/obj-malloc/front.o \
              $(BUILD)/obj-malloc/medium.o $(BUILD)/obj-malloc/cxx.o $(BUILD)/obj-malloc/strict.o $(BUILD)/obj-malloc/background.o
HDRS     := $(wildcard include/*.h src/*.h)

TEST_C    := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_C:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
WL_BIN    := $(patsubst bench/workloads/%.c,$(BUILD)/bench/wl/%,$(wildcard bench/workloads/*.c))

.PHONY: all check setup test test-asan test-tsan bench bench-apis bench-patterns bench-build bench-quick bench-fastpath demo demo-classic install clean
LIBS := $(BUILD)/libosmem.so $(BUILD)/libosmem.a $(BUILD)/libosmem-malloc.so $(BUILD)/libosmem-malloc.a
MALLOC_TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/malloc_*.c)) $(BUILD)/tests/test_stress_os
# C++ drop-in tests (tests/malloc_cxx*.cpp): each is also built as a plain binary, <name>_preload, that re-runs
# itself with LD_PRELOAD; $(BUILD)/tests/cxx_local.so is the C++ library malloc_cxx_local.c loads with RTLD_LOCAL.
CXX_TEST_SRC := $(wildcard tests/malloc_cxx*.cpp)
MALLOC_TEST_BIN += $(CXX_TEST_SRC:tests/%.cpp=$(BUILD)/tests/%) $(CXX_TEST_SRC:tests/%.cpp=$(BUILD)/tests/%_preload)
MALLOC_TEST_BIN += $(BUILD)/tests/cxx_local.so

# hardened_malloc's misuse and sanity programs, rewritten (tests/hardened/, run by tests/test_hardened.py): death
# probes that link nothing of osmem's (run on glibc, and with osmem preloaded), so never sanitised, and built only
# in the plain build (ASan and TSan bring their own malloc: the sanitised builds do not run them).
HARDENED_SRC := $(wildcard tests/hardened/*.c tests/hardened/*.cc)
HARDENED_BIN := $(basename $(HARDENED_SRC:tests/%=$(BUILD)/tests/%))

all: $(LIBS) $(MALLOC_TEST_BIN) $(BUILD)/osmem-replay $(BUILD)/tests/spec_prog $(BUILD)/tests/footprint_prog $(BUILD)/demo $(TEST_BIN) \
	$(BUILD)/bench/libpeak.so \
	$(if $(SAN),,$(HARDENED_BIN))

$(BUILD)/obj/%.o: src/%.c $(HDRS) | $(BUILD)/obj
	$(CC) $(CFLAGS) $(LIBFLAGS) -c $< -o $@

# The drop-in's footprint in every process that loads it (docs/TRADEOFFS.md, "The library's own pages"). The
# kernel maps a library's text 64 KiB at a time (fault-around), so one function run once makes up to 16 pages
# resident. Each function gets a section of its own (-ffunction-sections), and those that real programs run
# (src/hot.list, written by tools/hot-list) are renamed .text.hot.NAME, which the linker's default script places
# first in .text; src/hot.ld puts the code from outside osmem's objects that every start and exit runs (crtbeginS,
# libc_nonshared's pthread_atfork) just before .text, in the same window, and the read-only data in the first
# read-only segment, with the symbol tables ld.so reads at every load. What only errors, tracing, statistics,
# strict mode and the rarer paths run comes after the hot part, and the unwind tables keep a segment of their own
# that nothing reads unless something unwinds. DT_FINI is a function of the hot part (override.c, osm_dt_fini),
# not crti's _fini at the far end of the text, which every exit ran. A program maps 64 KiB of the library's code
# and 16 of its headers and constants where it mapped 84 and 36 (tests/test_footprint.py). The functions stay in
# .text, where Valgrind looks for symbols. GNU ld's default script and INSERT are needed (gold refuses INSERT;
# lld does not put .text.hot.* first): HOT=0 builds the library in source order, for other linkers.
# The hot functions are packed (alignment 1, not the compiler's 16): 2 KiB of padding in the window went to code
# (session 68's index). pairs and larson-1 ran level either way (bench/ab.py, 12 and 10 pairs: 1.000, 0.995).
# -fno-plt: the drop-in calls libc (and its own exported names) through the GOT, resolved at load, not through a
# PLT of 82 entries that sat at the window's start: 1.1 KiB of the window back for code (session 73), the same
# time to start (LD_DEBUG=statistics: 186,000 cycles in ld.so against 189,000, 80 relocations more and no lazy
# binding later), pairs level (20 pairs, 0.982, p 0.11). Not the classic library: teaching checkers watch its calls
# to libc through its PLT (ltrace).
OBJCOPY  ?= objcopy
HOT      ?= 1
ifeq ($(HOT),1)
HOTFLAGS := -ffunction-sections -fno-plt
HOTLINK  := -Wl,-T,src/hot.ld -Wl,-fini=osm_dt_fini
HOTCOPY   = $(OBJCOPY) @$(BUILD)/hot.objcopy $@.tmp $@ && rm -f $@.tmp
else
HOTFLAGS :=
HOTLINK  :=
HOTCOPY   = mv $@.tmp $@
endif
$(BUILD)/hot.objcopy: src/hot.list | $(BUILD)/obj-malloc
	sed -e 's/#.*//' -e '/^[[:space:]]*$$/d' \
	    -e 's/^[[:space:]]*\([^[:space:]]*\).*/--rename-section .text.\1=.text.hot.\1\n&/' \
	    -e 's/\n[[:space:]]*\([^[:space:]]*\).*/\n--set-section-alignment .text.\1=1/' $< > $@.tmp && mv $@.tmp $@

# compiled to .tmp, renamed into place by objcopy: an interrupted build leaves no object without the renames
$(BUILD)/obj-malloc/%.o: src/%.c $(HDRS) $(BUILD)/hot.objcopy | $(BUILD)/obj-malloc
	$(CC) $(CFLAGS) $(LIBFLAGS) $(HOTFLAGS) -DOSMEM_DROPIN -c $< -o $@.tmp
	$(HOTCOPY)

$(BUILD)/libosmem-malloc.so: $(MALLOC_OBJ) src/hot.ld
	$(CC) $(CFLAGS) $(SAN) -shared -Wl,-soname,libosmem-malloc.so $(HOTLINK) -o $@ $(MALLOC_OBJ) -lpthread

$(BUILD)/libosmem-malloc.a: $(MALLOC_OBJ)
	rm -f $@ && ar rcs $@ $^

# exit() or fork() from a signal handler inside the allocator: a static link of libosmem-malloc.a, so that the test
# can hold osmem's locks itself (osm_lock, osm_front_lock: hidden in the shared library), or ask which addresses are
# malloc(0)'s (osm_zero_owns).
$(BUILD)/tests/malloc_protect_exit_signal $(BUILD)/tests/malloc_protect_fork_waiter $(BUILD)/tests/malloc_zero: \
		$(BUILD)/tests/malloc_%: \
		tests/malloc_%.c $(BUILD)/libosmem-malloc.a | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TESTFLAGS) $< -o $@ $(BUILD)/libosmem-malloc.a -lpthread

# Drop-in tests link libosmem-malloc.so: malloc itself is osmem's.
$(BUILD)/tests/malloc_%: tests/malloc_%.c $(BUILD)/libosmem-malloc.so | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TESTFLAGS) $< -o $@ -L$(BUILD) -losmem-malloc -Wl,-rpath,'$$ORIGIN/..' -lpthread

# C++ tests: g++, -fsized-deallocation so every delete-expression calls the sized forms osmem checks.
CXXTESTFLAGS := -std=c++17 -Wall -Wextra -Werror -fsized-deallocation -D_GNU_SOURCE -Iinclude $(SAN)
$(BUILD)/tests/malloc_%: tests/malloc_%.cpp tests/test_util.h $(BUILD)/libosmem-malloc.so | $(BUILD)/tests
	$(CXX) $(CFLAGS) $(CXXTESTFLAGS) $< -o $@ -L$(BUILD) -losmem-malloc -Wl,-rpath,'$$ORIGIN/..' -lpthread -ldl
$(BUILD)/tests/malloc_%_preload: tests/malloc_%.cpp tests/test_util.h include/osmem.h | $(BUILD)/tests
	$(CXX) $(CFLAGS) $(CXXTESTFLAGS) -DPRELOAD_RUN $< -o $@ -lpthread -ldl
$(BUILD)/tests/cxx_local.so: tests/cxx_local.cpp | $(BUILD)/tests
	$(CXX) $(CFLAGS) $(CXXTESTFLAGS) -fPIC -shared $< -o $@

# -O0 -fno-builtin: each misuse reaches the allocator as written (tests/hardened/probe.h).
$(BUILD)/tests/hardened/%: tests/hardened/%.c tests/hardened/probe.h | $(BUILD)/tests/hardened
	$(CC) -O0 -g $(WARN) -D_GNU_SOURCE -fno-builtin $< -o $@ -lpthread
$(BUILD)/tests/hardened/%: tests/hardened/%.cc | $(BUILD)/tests/hardened
	$(CXX) -O0 -g -std=c++17 -Wall -Wextra -Werror -fsized-deallocation -fno-builtin $< -o $@

# The handler's exceptions pass through the C frames of operator new.
$(BUILD)/obj-malloc/cxx.o $(BUILD)/obj-notrace/cxx.o: LIBFLAGS += -fexceptions

$(BUILD)/libosmem.so: $(CORE_OBJ)
	$(CC) $(CFLAGS) $(SAN) -shared -Wl,-soname,libosmem.so -o $@ $^ -lpthread

$(BUILD)/libosmem.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

# An ordinary program's allocations, run with libosmem-malloc.so preloaded (tests/test_footprint.py, tools/hot-list).
$(BUILD)/tests/footprint_prog: tests/footprint_prog.c | $(BUILD)/tests
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE $< -o $@ -pthread

# The spec program runs on the shared library: the way users link it.
$(BUILD)/tests/spec_prog: tests/spec_prog.c $(BUILD)/libosmem.so | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TESTFLAGS) $< -o $@ -L$(BUILD) -losmem -Wl,-rpath,'$$ORIGIN/..'

# The drop-in stress test on the os_* API, against the static core (also the ThreadSanitizer build).
$(BUILD)/tests/test_stress_os: tests/malloc_stress.c $(BUILD)/libosmem.a | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TESTFLAGS) -DUSE_OS_API $< -o $@ $(BUILD)/libosmem.a -lpthread

# The fault-injection tests share their workload.
$(BUILD)/tests/malloc_faults $(BUILD)/tests/test_faults $(BUILD)/tests/malloc_faults_rlimit: tests/test_faults.h tests/test_util.h
$(BUILD)/tests/test_faults_rlimit: tests/malloc_faults_rlimit.c tests/test_faults.h tests/test_util.h

# Unit and stress tests link the static library, so they can reach the core's hidden test hooks.
$(BUILD)/tests/%: tests/%.c $(BUILD)/libosmem.a | $(BUILD)/tests
	$(CC) $(CFLAGS) $(TESTFLAGS) $< -o $@ $(BUILD)/libosmem.a -lpthread

$(BUILD)/bench/%: bench/%.c $(BUILD)/libosmem.a | $(BUILD)/bench
	$(CC) $(CFLAGS) $(TESTFLAGS) $< -o $@ $(BUILD)/libosmem.a -lpthread -lm

$(BUILD)/demo: examples/demo.c $(BUILD)/libosmem.so
	$(CC) $(CFLAGS) $(TESTFLAGS) $< -o $@ -L$(BUILD) -losmem -Wl,-rpath,'$$ORIGIN'

# osmem-replay: a trace's requests re-run on osmem classic, osmem default and glibc (not sanitised: its
# children preload osmem's malloc)
$(BUILD)/osmem-replay: tools/osmem-replay.c include/osmem.h include/block_meta.h
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE -Iinclude $< -o $@ -Wl,-z,now

# The workloads of bench/run.py link nothing of osmem's: plain libc, each allocator preloaded in turn.
$(BUILD)/bench/wl/%: bench/workloads/%.c bench/workloads/common.h | $(BUILD)/bench/wl
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE $< -o $@ -pthread -lm

# The yardstick allocator (bench/null/noop.c: per-thread lists, no owner, nothing given back), for the scaling
# section of the report. -fno-builtin: its calloc's malloc+memset must not become a call to calloc.
$(BUILD)/bench/libnoop.so: bench/null/noop.c | $(BUILD)/bench
	$(CC) $(CFLAGS) $(WARN) -fno-builtin -fPIC -shared $< -o $@

# The peak-RSS probe (bench/peak/peak.c): preloaded into every measured process by bench/run.py.
$(BUILD)/bench/libpeak.so: bench/peak/peak.c | $(BUILD)/bench
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE -fPIC -shared $< -o $@

$(BUILD)/obj $(BUILD)/obj-malloc $(BUILD)/obj-notrace $(BUILD)/tests $(BUILD)/tests/hardened $(BUILD)/bench $(BUILD)/bench/wl:
	mkdir -p $@

# Every test: the plain build, then AddressSanitizer+UBSan, then ThreadSanitizer on the threaded test.
check: setup
	@MAKE="$(MAKE)" sh tests/check.sh

setup:
	@sh tests/setup.sh

test: all
	python3 tests/run_tests.py --build $(BUILD) $(TEST_ARGS)

# ASan brings its own malloc, so the sanitizer build runs the tests of the os_* API and the core.
test-asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" TEST_ARGS=--core-only test

# TSan owns malloc too: the threaded tests run on the os_* API (malloc_stress.c built with -DUSE_OS_API).
# The threaded tests of the os_* API (one run, one summary line for tests/check.sh to count).
TSAN_TESTS := test_threads test_stress_os test_protect_cancel_trace test_protect_dump_pipe test_protect_fork_signal
comma := ,
space := $(empty) $(empty)
test-tsan:
	$(MAKE) BUILD=build-tsan SAN="-fsanitize=thread" $(TSAN_TESTS:%=build-tsan/tests/%)
	python3 tests/run_tests.py --build build-tsan --only $(subst $(space),$(comma),$(TSAN_TESTS))

# The same drop-in with tracing compiled out: the baseline for the cost of tracing when it is off.
NOTRACE_OBJ := $(MALLOC_OBJ:$(BUILD)/obj-malloc/%=$(BUILD)/obj-notrace/%)
$(BUILD)/obj-notrace/%.o: src/%.c $(HDRS) $(BUILD)/hot.objcopy | $(BUILD)/obj-notrace
	$(CC) $(CFLAGS) $(LIBFLAGS) $(HOTFLAGS) -DOSMEM_DROPIN -DOSMEM_NO_TRACE -c $< -o $@.tmp
	$(HOTCOPY)
$(BUILD)/libosmem-malloc-notrace.so: $(NOTRACE_OBJ) src/hot.ld
	$(CC) $(CFLAGS) -shared $(HOTLINK) -o $@ $(NOTRACE_OBJ) -lpthread

# fastpath runs on plain malloc: it is linked with nothing of osmem's and preloaded with each allocator.
$(BUILD)/bench/fastpath: bench/fastpath.c | $(BUILD)/bench
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE $< -o $@

bench-build: $(BENCH_BIN) $(WL_BIN) $(LIBS) $(BUILD)/libosmem-malloc-notrace.so $(BUILD)/bench/libnoop.so \
	$(BUILD)/bench/libpeak.so

# The best-fit index against the walk, then the ranking against glibc, jemalloc, mimalloc and tcmalloc
# (bench/run.py: about 8 minutes at 5 runs; writes bench/results/latest.md). BENCH_ARGS="--runs 3 --only larson"...
bench: bench-build
	@sh bench/setup.sh
	$(BUILD)/bench/bestfit
	python3 bench/run.py --build $(BUILD) $(BENCH_ARGS)

# A smoke run of the ranking: reduced sizes, one run, a minute or two (report in $(BUILD)/bench/quick.md).
bench-quick: bench-build
	python3 bench/run.py --build $(BUILD) --quick $(BENCH_ARGS)

# Every entry point of the malloc family at every size range, 1 and 4 threads (and 4 freeing each other's blocks),
# against the peers: a scan for the cells where osmem is far behind (bench/apis.py: about 5 minutes; writes
# bench/results/apis.md).
bench-apis: bench-build
	@sh bench/setup.sh
	python3 bench/apis.py --build $(BUILD) $(BENCH_ARGS)

# A program's life over time (big buffers that grow, calloc in a loop, phases, idle periods, threads coming and
# going) against the peers: time and peak RSS (bench/patterns.py: about 4 minutes; writes bench/results/patterns.md).
bench-patterns: bench-build
	@sh bench/setup.sh
	python3 bench/patterns.py --build $(BUILD) $(BENCH_ARGS)

# malloc/free loops in ns per op, with osmem's classic profile and osmem with tracing compiled out.
bench-fastpath: bench-build
	@sh bench/setup.sh
	python3 bench/run_fastpath.py --build $(BUILD)

# The main job: sqlite3 on osmem with statistics, a decision trace and a heap map (tools/demo.sh).
demo: all
	sh tools/demo.sh

# The classic allocator step by step, with its system calls and a text map of the heap.
demo-classic: all
	$(BUILD)/demo

# Everything it copies from $(BUILD): a clean clone's `make install` builds all of it first.
install: $(LIBS) $(BUILD)/osmem-replay
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/libosmem.so $(BUILD)/libosmem-malloc.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(BUILD)/libosmem.a $(BUILD)/libosmem-malloc.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 tools/osmem-run $(BUILD)/osmem-replay $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/osmem/heapmap
	install -m 755 tools/osmem-heapmap $(DESTDIR)$(PREFIX)/share/osmem/
	install -m 644 tools/heapmap/*.py $(DESTDIR)$(PREFIX)/share/osmem/heapmap/
	ln -sf ../share/osmem/osmem-heapmap $(DESTDIR)$(PREFIX)/bin/osmem-heapmap
	install -m 644 include/osmem.h include/block_meta.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' osmem.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/osmem.pc
	sed -e 's|@PREFIX@|$(PREFIX)|' osmem-malloc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/osmem-malloc.pc
	@# the loader's cache, so that a program linked against the new libraries finds them (a prefix the loader
	@# searches, such as /usr/local/lib; root only, not into a DESTDIR staging tree)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	rm -rf build build-asan build-tsan build-fuzz

# ------------------------------------------------------------------
# Fuzzing (fuzz/README.md): libFuzzer harnesses built with clang into $(FUZZ_BUILD); `make fuzz FUZZ_SECONDS=N`
# runs each for N seconds. The library objects are rebuilt with coverage instrumentation; the os_* harnesses add
# ASan and UBSan, the drop-in's cannot (malloc is osmem's there).
# ------------------------------------------------------------------
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= $(BUILD)-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer
FUZZ_ASAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
# No comparison tracing in osmem's own objects: libFuzzer would learn the per-process secrets from the operands
# of free's freed-mark compare and write them into its own inputs, which its parent process then copies into a
# slot and frees: a false `double free` in the harness's parent (a program does not see the secrets).
FUZZ_LIBFLAGS:= $(WARN) -fPIC -fvisibility=hidden -Iinclude -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp
FUZZ_HFLAGS  := $(WARN) -fno-builtin -Wno-unused-function -D_GNU_SOURCE -Iinclude -Isrc -Itests
FUZZ_OBJ     := $(CORE_SRC:src/%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_MOBJ    := $(CORE_SRC:src/%.c=$(FUZZ_BUILD)/obj-malloc/%.o) $(FUZZ_BUILD)/obj-malloc/override.o \
                $(FUZZ_BUILD)/obj-malloc/front.o $(FUZZ_BUILD)/obj-malloc/medium.o $(FUZZ_BUILD)/obj-malloc/strict.o \
                $(FUZZ_BUILD)/obj-malloc/background.o
FUZZ_HDRS    := $(HDRS) fuzz/fuzz_common.h tests/test_util.h
FUZZ_BIN     := $(addprefix $(FUZZ_BUILD)/,fuzz_ops fuzz_ops_malloc fuzz_ops_malloc_classic fuzz_bestfit \
                fuzz_corrupt fuzz_corrupt_classic)

.PHONY: fuzz fuzz-build soak

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	python3 fuzz/run.py --dir $(FUZZ_BUILD) --seconds $(FUZZ_SECONDS)

$(FUZZ_BUILD)/obj/%.o: src/%.c $(HDRS) Makefile | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_LIBFLAGS) $(FUZZ_ASAN) -c $< -o $@

$(FUZZ_BUILD)/obj-malloc/%.o: src/%.c $(HDRS) Makefile | $(FUZZ_BUILD)/obj-malloc
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_LIBFLAGS) -DOSMEM_DROPIN -c $< -o $@

$(FUZZ_BUILD)/fuzz_ops: fuzz/fuzz_ops.c $(FUZZ_HDRS) $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_HFLAGS) -fsanitize=fuzzer $(FUZZ_ASAN) $< $(FUZZ_OBJ) -o $@ -lpthread

$(FUZZ_BUILD)/fuzz_bestfit: fuzz/fuzz_ops.c $(FUZZ_HDRS) $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_HFLAGS) -DFUZZ_BESTFIT -fsanitize=fuzzer $(FUZZ_ASAN) $< $(FUZZ_OBJ) -o $@ -lpthread

$(FUZZ_BUILD)/fuzz_ops_malloc: fuzz/fuzz_ops.c $(FUZZ_HDRS) $(FUZZ_MOBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_HFLAGS) -DOSMEM_DROPIN -DFUZZ_DROPIN -fsanitize=fuzzer $< $(FUZZ_MOBJ) -o $@ -lpthread

$(FUZZ_BUILD)/fuzz_ops_malloc_classic: fuzz/fuzz_ops.c $(FUZZ_HDRS) $(FUZZ_MOBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_HFLAGS) -DOSMEM_DROPIN -DFUZZ_DROPIN -DFUZZ_WANT_CLASSIC -fsanitize=fuzzer $< \
		$(FUZZ_MOBJ) -o $@ -lpthread

# fuzz_corrupt carries a forked child's coverage back: cntrs.o names the counters' section, uninstrumented.
$(FUZZ_BUILD)/cntrs.o: fuzz/cntrs.c | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -c $< -o $@

$(FUZZ_BUILD)/fuzz_corrupt: fuzz/fuzz_corrupt.c $(FUZZ_HDRS) $(FUZZ_MOBJ) $(FUZZ_BUILD)/cntrs.o
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_HFLAGS) -DOSMEM_DROPIN -DFUZZ_DROPIN -fsanitize=fuzzer $< $(FUZZ_MOBJ) \
		$(FUZZ_BUILD)/cntrs.o -o $@ -lpthread

$(FUZZ_BUILD)/fuzz_corrupt_classic: fuzz/fuzz_corrupt.c $(FUZZ_HDRS) $(FUZZ_OBJ) $(FUZZ_BUILD)/cntrs.o
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_HFLAGS) -fsanitize=fuzzer $(FUZZ_ASAN) $< $(FUZZ_OBJ) $(FUZZ_BUILD)/cntrs.o \
		-o $@ -lpthread

$(FUZZ_BUILD)/obj $(FUZZ_BUILD)/obj-malloc:
	mkdir -p $@

# The soak test (tests/malloc_soak.c; CI runs it for 20 s with the other tests): 16 threads on the drop-in for
# SOAK_SECONDS (default 10 minutes); `make soak SOAK_PROFILE=classic` runs it on the classic profile.
SOAK_SECONDS ?= 600
SOAK_PROFILE ?=
soak: $(BUILD)/tests/malloc_soak
	OSMEM_PROFILE=$(SOAK_PROFILE) $(BUILD)/tests/malloc_soak $(SOAK_SECONDS)
