/* malloc_front_footprint: what the drop-in costs a program that barely allocates.
 *
 * Hazard: every process that preloads osmem pays for the library's initialised writable data (its pages are
 * mapped from the file and resident), however little it allocates.
 * Small programs are where osmem's peak RSS is furthest above glibc's (docs/TRADEOFFS.md), so a regression here
 * shows in every one of them. It happened once: the empty heap (front.c), one initialised struct, carried the
 * 18 KiB stacks of a thread's caches, and the library's writable segment was 24 KiB resident instead of 8.
 * The same for .bss: the big tables (the segment map, 4 MiB; the first slot chunk, 24 MiB) once sat between the
 * small globals, so a program touched a page on each side of every table: 9 pages of data and .bss in all.
 * Checked:
 *   - data_segment_small: the library's file-backed writable mapping (.data, .got: what the loader maps from
 *     the file and relocates) is at most 12 KiB. Big initialised objects must not exist;
 *   - bss_small: the library's .bss section (read from its ELF file) is at most 16 KiB: the big tables are in
 *     .lbss (LARGE_BSS, internal.h), which the linker places after it, so the small globals share a few pages;
 *   - segment_metadata_one_page: a program with objects of 12 size classes has at most 2 of the 16 pages of its
 *     segment's metadata (the descriptors of 64 pages and the segment's fields) resident, after os_stats and
 *     malloc_info have read the descriptors. Until session 27 a new segment wrote all 63 descriptors (each put on
 *     the pool) and its fields after them: 5 pages, 16 KiB more in every process;
 *   - idle_transfer_cache_not_written: after the front's first decay pass (due at a process's first request that
 *     reaches the core), the library's .lbss (its address range, from the ELF section and the load address) has
 *     at most 12 KiB written (pagemap: present and exclusive, which leaves out the zero page reads map): the
 *     first slot chunk's page and the segment map's. Until session 38 the pass stored 0 into each empty bin's
 *     mark of the transfer cache (medium.c, a 16 KiB array): 28 KiB resident in every process, pairs' included.
 *     Until session 52 the test read smaps' Rss of .lbss's mapping, which the kernel merges with a mapping that
 *     ASLR places right after it (1 run in 75): the test failed with 20 KiB. It now places such a mapping itself.
 * Prints `PASS front/footprint/...` or `FAIL ...: why`. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <elf.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "osmem.h"

static int failures;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL front/footprint/%s: %s\n", name, why);
		failures++;
	} else {
		printf("PASS front/footprint/%s\n", name);
	}
	fflush(stdout);
}

struct data_seg { size_t bytes; bool found; char path[256]; uintptr_t base; };

/* The library's file-backed writable mappings (rw-p, named by its path) in /proc/self/maps: their bytes, and
 * the library's path; and its load address (the start of its mapping at file offset 0). */
static void find_data(struct data_seg *d)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi, offset;
		char perms[8];
		int off = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &lo, &hi, perms, &offset, &off) != 4 || off == 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		if (!d->base && offset == 0 && strstr(line + off, "libosmem-malloc.so"))
			d->base = lo;
		if (strstr(line + off, "libosmem-malloc.so") && !strcmp(perms, "rw-p")) {
			d->bytes += hi - lo;
			d->found = true;
			snprintf(d->path, sizeof d->path, "%s", line + off);
		}
	}
	fclose(f);
}

/* The KiB written in [lo, hi): pages /proc/self/pagemap shows present and mapped by this process alone (bit 63
 * and bit 56). A page only read maps the shared zero page, which is not exclusive, as smaps' Rss leaves it out.
 * Why not smaps: the kernel merges an anonymous mapping placed right after .lbss (ASLR decides, about 1 run in
 * 75: a 12 KiB mapping of the loader's, 8 KiB of it written) into .lbss's entry, and its Rss with it. -1 if
 * pagemap cannot be read; *why says so. */
static long written_kib(uintptr_t lo, uintptr_t hi, char *why, size_t len)
{
	FILE *f = fopen("/proc/self/pagemap", "rb");
	if (!f) {
		snprintf(why, len, "/proc/self/pagemap cannot be opened");
		return -1;
	}
	long pages = 0;
	uint64_t e[512];
	for (uintptr_t a = lo; a < hi;) {
		size_t n = (hi - a) / 4096 < 512 ? (hi - a) / 4096 : 512;
		if (fseek(f, (long)(a / 4096 * 8), SEEK_SET) || fread(e, 8, n, f) != n) {
			snprintf(why, len, "/proc/self/pagemap cannot be read at %#lx", (unsigned long)a);
			fclose(f);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			pages += (e[i] >> 63 & 1) && (e[i] >> 56 & 1);
		a += n * 4096;
	}
	fclose(f);
	return pages * 4;
}

/* The end of the mapping that holds addr, from /proc/self/maps, or 0. */
static uintptr_t mapping_end(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return 0;
	char line[512];
	uintptr_t end = 0;
	while (!end && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= addr && addr < hi)
			end = hi;
	}
	fclose(f);
	return end;
}

/* The size of the section called `name` in the ELF file at path, or -1; its address (from the load address)
 * in *addr if addr is not NULL. */
static long section_find(const char *path, const char *name, uintptr_t *addr)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	long size = -1;
	Elf64_Ehdr eh;
	if (fread(&eh, sizeof eh, 1, f) == 1 && eh.e_shentsize == sizeof(Elf64_Shdr) && eh.e_shstrndx < eh.e_shnum) {
		Elf64_Shdr *sh = calloc(eh.e_shnum, sizeof *sh);
		if (sh && !fseek(f, (long)eh.e_shoff, SEEK_SET) && fread(sh, sizeof *sh, eh.e_shnum, f) == eh.e_shnum) {
			char *names = malloc(sh[eh.e_shstrndx].sh_size + 1);
			if (names && !fseek(f, (long)sh[eh.e_shstrndx].sh_offset, SEEK_SET) &&
			    fread(names, 1, sh[eh.e_shstrndx].sh_size, f) == sh[eh.e_shstrndx].sh_size) {
				names[sh[eh.e_shstrndx].sh_size] = 0;
				for (unsigned i = 0; i < eh.e_shnum; i++)
					if (sh[i].sh_name < sh[eh.e_shstrndx].sh_size && !strcmp(names + sh[i].sh_name, name)) {
						size = (long)sh[i].sh_size;
						if (addr)
							*addr = sh[i].sh_addr;
					}
			}
			free(names);
		}
		free(sh);
	}
	fclose(f);
	return size;
}

int main(void)
{
	char why[512];
	struct os_stats st;
	os_stats(&st); /* osmem's: the test links the library (and so it stays linked under --as-needed) */

	struct data_seg d = { 0, false, "", 0 };
	find_data(&d);
	if (!d.found)
		result("data_segment_small", "no rw-p mapping of libosmem-malloc.so in /proc/self/maps");
	else if (d.bytes > 12 * 1024) {
		snprintf(why, sizeof why, "the library maps %zu KiB of initialised writable data from its file (at most 12): "
			 "a large initialised object in .data (nm -S --size-sort -t d libosmem-malloc.so | grep ' [dD] ')",
			 d.bytes / 1024);
		result("data_segment_small", why);
	} else {
		result("data_segment_small", NULL);
	}

	long bss = d.found ? section_find(d.path, ".bss", NULL) : -1;
	if (bss < 0) {
		snprintf(why, sizeof why, "no .bss section read from %s", d.found ? d.path : "(library not found)");
		result("bss_small", why);
	} else if (bss > 16 * 1024) {
		snprintf(why, sizeof why, "the library's .bss is %ld KiB (at most 16): a big table outside .lbss "
			 "(mark it LARGE_BSS; nm -S --size-sort -t d on the library lists them)", bss / 1024);
		result("bss_small", why);
	} else {
		result("bss_small", NULL);
	}

	/* one object of each class from 16 to 256 bytes: 12 pages of a fresh segment in use. Where the kernel's huge
	 * pages are `always`, the first write to a segment could bring a whole 2 MiB page: not for this process */
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	void *keep[12];
	for (int i = 0; i < 12; i++)
		keep[i] = malloc(i < 8 ? 16 * (size_t)(i + 1) : 128 + 32 * (size_t)(i - 7));
	/* and what reads every segment's descriptors (os_stats, malloc_info) reads none of pages never handed out: a
	 * read would map them (the zero page, which mincore counts) */
	struct os_stats after;
	os_stats(&after);
	FILE *null = fopen("/dev/null", "w");
	if (null) {
		malloc_info(0, null);
		fclose(null);
	}
	unsigned char vec[16];
	char *seg = (char *)((uintptr_t)keep[0] & ~(((uintptr_t)4 << 20) - 1));
	if (mincore(seg, 64 * 1024, vec) != 0) {
		snprintf(why, sizeof why, "mincore of the segment's first 64 KiB at %p (of the object %p) failed: not a "
			 "front segment?", (void *)seg, keep[0]);
		result("segment_metadata_one_page", why);
	} else {
		int resident = 0;
		char pages[64] = "";
		for (int i = 0; i < 16; i++)
			if (vec[i] & 1) {
				resident++;
				snprintf(pages + strlen(pages), sizeof pages - strlen(pages), " %d", i);
			}
		if (resident > 2) {
			snprintf(why, sizeof why, "%d of the 16 pages of the segment's metadata at %p are resident (at most 2), "
				 "pages%s: the descriptors of pages not yet handed out were written or read (a read maps the zero page), "
				 "or the segment's fields sit outside page 0",
				 resident, (void *)seg, pages);
			result("segment_metadata_one_page", why);
		} else {
			result("segment_metadata_one_page", NULL);
		}
	}

	/* a request for the core (1 MiB: a mapping) runs the front's idle tick, and the first decay pass is due at
	 * once (none ran before): the transfer cache's decay looks at its bins, all empty in this process */
	free(malloc((size_t)1 << 20));
	uintptr_t base = d.base, at = 0;
	long size = d.found ? section_find(d.path, ".lbss", &at) : -1;
	if (!base || size <= 0) {
		snprintf(why, sizeof why, "no .lbss found (load address %#lx, section size %ld, library %s)",
			 (unsigned long)base, size, d.found ? d.path : "(not found)");
		result("idle_transfer_cache_not_written", why);
	} else {
		uintptr_t lo = (base + at) & ~(uintptr_t)4095, hi = (base + at + (uintptr_t)size + 4095) & ~(uintptr_t)4095;
		/* what ASLR does now and then, every run: a written 12 KiB mapping right after .lbss (merged into its
		 * entry where the kernel can), which the count must leave out and see on its own (the count's check) */
		char *next = mmap((void *)hi, 12 * 1024, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (next == MAP_FAILED)
			next = mmap(NULL, 12 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (next != MAP_FAILED)
			memset(next, 1, 12 * 1024);
		char err[128] = "";
		long lbss = written_kib(lo, hi, err, sizeof err);
		long probe = next == MAP_FAILED ? -1 : written_kib((uintptr_t)next, (uintptr_t)next + 12 * 1024, err,
								   sizeof err);
		if (lbss < 0 || probe != 12) {
			snprintf(why, sizeof why, "the count of written pages does not work: %s (a written 12 KiB mapping "
				 "at %p counted %ld KiB)", err[0] ? err : "pagemap's present and exclusive bits", (void *)next,
				 probe);
			result("idle_transfer_cache_not_written", why);
		} else if (lbss > 12) {
			snprintf(why, sizeof why, "the library's .lbss (%#lx-%#lx, mapping to %#lx) has %ld KiB written (at "
				 "most 12) in a program that never used a medium block: a table written for nothing (the decay "
				 "of the transfer cache's empty bins?)",
				 (unsigned long)lo, (unsigned long)hi, (unsigned long)mapping_end(lo), lbss);
			result("idle_transfer_cache_not_written", why);
		} else {
			result("idle_transfer_cache_not_written", NULL);
		}
		if (next != MAP_FAILED)
			munmap(next, 12 * 1024);
	}
	for (int i = 0; i < 12; i++)
		free(keep[i]);

	return failures != 0;
}
