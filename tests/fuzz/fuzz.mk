# tests/fuzz/fuzz.mk: libFuzzer targets (included by the top Makefile).
#
#   make fuzz            build the fuzzers into $(FUZZ_B)/
#   make check-fuzz      replay fixtures/crashers/, then run each fuzzer for
#                        FUZZ_SECONDS (default 45) from its corpus and seeds;
#                        fails on any crash, leak, hang or OOM, whose input
#                        is copied to fixtures/crashers/TARGET-<sha1>
#   make check-crashers  replay fixtures/crashers/ only (fast)
#   make fuzz-seeds      (re)generate the seeds into $(B)/fuzz-seeds/
#
# The library is compiled again with clang and the sanitizers into
# $(FUZZ_B)/obj/.  Overrides: FUZZ_CC, FUZZ_B, FUZZ_SECONDS.  `make -j5
# check-fuzz` runs the five fuzzers side by side.

FUZZ_CC      ?= clang
FUZZ_B       ?= build-fuzz
FUZZ_SECONDS ?= 45
FUZZ_SEEDS   := $(B)/fuzz-seeds

FUZZ_TARGETS := fuzz-vhd-footer fuzz-vhdx-structures fuzz-open-read \
                fuzz-open-write fuzz-nbd-server
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_B)/%)
# Largest input per target: a footer and header plus locator data; the
# biggest VHDX structure (a 64 KiB table plus items, or a log); an image
# (raw up to 100 KiB, or sparse: a 4-6 MiB VHDX in 4-32 KiB of input).
FUZZ_MAXLEN_fuzz-vhd-footer      := 16384
FUZZ_MAXLEN_fuzz-vhdx-structures := 262144
FUZZ_MAXLEN_fuzz-open-read       := 1048576
FUZZ_MAXLEN_fuzz-open-write      := 1048576
# A client's byte stream: a handshake of a few options and some requests
# (write payloads included); more only repeats the same code.
FUZZ_MAXLEN_fuzz-nbd-server      := 65536

FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=gnu11 -pthread -g -O1 $(FUZZ_SAN) $(WARN) \
                -Wno-unknown-warning-option
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_B)/obj/%.o)
FUZZ_HEADERS := tests/fuzz/fuzz-common.h
# fuzz-nbd-server links the server's parts (not main.c, which it
# replaces); the other targets link the library only.
FUZZ_NBD_OBJS := $(patsubst %.c,$(FUZZ_B)/obj/%.o,\
                   $(filter-out nbd-server/main.c,$(wildcard nbd-server/*.c)))
FUZZ_EXTRA_OBJS_fuzz-nbd-server := $(FUZZ_NBD_OBJS)

.PHONY: fuzz check-fuzz check-crashers fuzz-seeds clean-fuzz \
        $(FUZZ_TARGETS:%=fuzz-run-%)

fuzz: $(FUZZ_BINS)

$(FUZZ_B)/obj/libvhd/%.o: libvhd/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	  -DVHD_NO_ATTRIBUTES $(DEPFLAGS) -c -o $@ $<

$(FUZZ_B)/obj/nbd-server/%.o: nbd-server/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) \
	  -fsanitize=fuzzer-no-link $(DEPFLAGS) -c -o $@ $<

$(FUZZ_B)/fuzz-nbd-server: $(FUZZ_NBD_OBJS)

$(FUZZ_BINS): $(FUZZ_B)/%: tests/fuzz/%.c $(FUZZ_HEADERS) $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer \
	  $(DEPFLAGS) -o $@ $< $(FUZZ_EXTRA_OBJS_$*) $(FUZZ_LIB_OBJS) $(LIBS)

# Seeds: small images made by vhdtool, qemu-img and seed-tool.
$(FUZZ_B)/seed-tool: tests/fuzz/seed-tool.c $(B)/libvhd.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(B)/libvhd.a $(LIBS)

$(FUZZ_SEEDS)/.stamp: tests/fuzz/make-seeds.sh $(B)/vhdtool \
                      $(FUZZ_B)/seed-tool
	tests/fuzz/make-seeds.sh $(FUZZ_SEEDS) $(B)/vhdtool $(FUZZ_B)/seed-tool
	@touch $@

fuzz-seeds:
	rm -f $(FUZZ_SEEDS)/.stamp
	$(MAKE) $(FUZZ_SEEDS)/.stamp

# Every crasher of every target, failing at the end if any crashed.
check-crashers: $(FUZZ_BINS)
	@rc=0; for t in $(FUZZ_TARGETS); do \
	  tests/fuzz/run-fuzz.sh replay $$t $(FUZZ_B)/$$t || rc=1; \
	done; exit $$rc

check-fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)
	@echo "check-fuzz: no crashes in $(FUZZ_SECONDS)s per target"

$(FUZZ_TARGETS:%=fuzz-run-%): fuzz-run-%: $(FUZZ_B)/% $(FUZZ_SEEDS)/.stamp
	@tests/fuzz/run-fuzz.sh fuzz $* $(FUZZ_B)/$* $(FUZZ_SEEDS)/$* \
	  $(FUZZ_SECONDS) $(FUZZ_MAXLEN_$*) $(FUZZ_B)

clean-fuzz:
	rm -rf $(FUZZ_B) $(FUZZ_SEEDS)
clean: clean-fuzz

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_NBD_OBJS:.o=.d) $(FUZZ_BINS:=.d)
