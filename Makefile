# libvhd: VHD and VHDX virtual disks.  `make`, `make check`, `make install`.
# Overrides: CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX, DESTDIR, B (build dir).

VERSION  := 0.1.0
SOMAJOR  := 0
CC       ?= cc
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
B        ?= build
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wvla -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wsign-compare -Wno-unused-parameter \
            -Wno-format-truncation -Wno-format-nonliteral
ALL_CFLAGS   = -std=gnu11 -pthread $(WARN) $(EXTRA_CFLAGS) $(CFLAGS)
ALL_CPPFLAGS = -Iinclude -Ilibvhd -Ilibvhd/common -D_GNU_SOURCE \
               -D_FILE_OFFSET_BITS=64 $(CPPFLAGS)
LIB_CFLAGS   = -fPIC -fvisibility=hidden -DVHD_NO_ATTRIBUTES
DEPFLAGS     = -MMD -MP
LIBS         = -lz -luuid -lpthread -laio

LIB_SRCS  := $(sort $(wildcard libvhd/*.c libvhd/*/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/obj/%.o)
TOOL_SRCS := $(sort $(wildcard vhdtool/*.c))
TOOL_OBJS := $(TOOL_SRCS:%.c=$(B)/obj/%.o)
NBD_SRCS  := $(sort $(wildcard nbd-server/*.c))
NBD_OBJS  := $(NBD_SRCS:%.c=$(B)/obj/%.o)
FUSE_SRCS := $(sort $(wildcard vhdfuse/*.c))
FUSE_OBJS := $(FUSE_SRCS:%.c=$(B)/obj/%.o)
FUSE_CFLAGS = $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   = $(shell pkg-config --libs fuse3 2>/dev/null)
TEST_SRCS := $(sort $(wildcard tests/unit/*.c tests/api/*.c))
CXX      ?= c++
TESTS     := $(TEST_SRCS:%.c=$(B)/%)
EXAMPLES  := $(patsubst %.c,$(B)/%,$(wildcard examples/*.c))

SONAME   := libvhd.so.$(SOMAJOR)
MANPAGES := $(B)/libvhd.3 $(B)/vhdtool.1 \
            $(if $(FUSE_SRCS),$(B)/vhdfuse.1) $(if $(NBD_SRCS),$(B)/vhd-nbd-server.8)
PROGRAMS := $(B)/vhdtool $(if $(NBD_SRCS),$(B)/vhd-nbd-server) \
            $(if $(FUSE_SRCS),$(B)/vhdfuse)

.PHONY: all check check-asan deps demo bench install clean
all: $(B)/libvhd.a $(B)/libvhd.so $(PROGRAMS) $(B)/libvhd.pc $(MANPAGES)

$(B)/obj/libvhd/%.o: libvhd/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(LIB_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(B)/libvhd.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libvhd.so.$(VERSION): $(LIB_OBJS) libvhd/libvhd.syms
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) \
	  -Wl,--version-script=libvhd/libvhd.syms -Wl,--no-undefined \
	  $(LDFLAGS) -o $@ $(LIB_OBJS) $(LIBS)

$(B)/libvhd.so: $(B)/libvhd.so.$(VERSION)
	ln -sf libvhd.so.$(VERSION) $(B)/$(SONAME)
	ln -sf libvhd.so.$(VERSION) $@

$(B)/libvhd.pc: libvhd/libvhd.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' $< > $@

POD2MAN = pod2man --center=libvhd --release=$(VERSION)

$(B)/libvhd.3: docs/libvhd.pod
	@mkdir -p $(@D)
	$(POD2MAN) --section=3 --name=libvhd $< > $@
$(B)/vhdtool.1: vhdtool/vhdtool.pod
	@mkdir -p $(@D)
	$(POD2MAN) --section=1 --name=vhdtool $< > $@
$(B)/vhdfuse.1: vhdfuse/vhdfuse.pod
	@mkdir -p $(@D)
	$(POD2MAN) --section=1 --name=vhdfuse $< > $@
$(B)/vhd-nbd-server.8: nbd-server/vhd-nbd-server.pod
	@mkdir -p $(@D)
	$(POD2MAN) --section=8 --name=vhd-nbd-server $< > $@

$(B)/obj/vhdtool/%.o: vhdtool/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(B)/vhdtool: $(TOOL_OBJS) $(B)/libvhd.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(B)/libvhd.a $(LIBS)

$(B)/obj/nbd-server/%.o: nbd-server/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(B)/vhd-nbd-server: $(NBD_OBJS) $(B)/libvhd.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(NBD_OBJS) $(B)/libvhd.a $(LIBS)

$(B)/obj/vhdfuse/%.o: vhdfuse/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(FUSE_CFLAGS) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(B)/vhdfuse: $(FUSE_OBJS) $(B)/libvhd.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(FUSE_OBJS) $(B)/libvhd.a $(FUSE_LIBS) $(LIBS)

# Tests see the library's internals: they link the static archive.
$(B)/tests/%: tests/%.c $(B)/libvhd.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Itests $(ALL_CFLAGS) $(DEPFLAGS) -o $@ $< \
	  $(B)/libvhd.a -lcriterion $(LIBS)

# Examples use the installed header only, and link as users do.
$(B)/examples/%: examples/%.c $(B)/libvhd.a include/libvhd.h
	@mkdir -p $(@D)
	$(CC) -Iinclude $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(B)/libvhd.a $(LIBS)

deps:
	@scripts/install-deps.sh

check: deps
	$(MAKE) all tests EXTRA_CFLAGS=-Werror
	B=$(B) tests/run-tests.sh $(TESTS)

tests: $(TESTS) $(B)/tests/compile/header-c99.o $(B)/tests/compile/header-cxx.o \
       $(EXAMPLES)

# The public header stands alone, in strict C99 and in C++.
$(B)/tests/compile/header-c99.o: tests/compile/header-only.c include/libvhd.h
	@mkdir -p $(@D)
	$(CC) -std=c99 -pedantic -Wall -Wextra -Werror -Iinclude -c -o $@ $<
$(B)/tests/compile/header-cxx.o: tests/compile/header-only.c include/libvhd.h
	@mkdir -p $(@D)
	$(CXX) -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -c -o $@ $<

check-asan: deps
	$(MAKE) check B=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"

# Memory errors and definite leaks under valgrind (slow, never part of
# check; VG_TESTS narrows the binaries): scripts/check-valgrind.sh.
.PHONY: check-valgrind
check-valgrind: deps all tests
	B=$(B) scripts/check-valgrind.sh

demo: deps all
	scripts/demo.sh

# Side by side with qemu-img, qemu-nbd, nbdkit and vhdimount (minutes; never
# part of check).  QUICK=1 shortens every run.
bench: deps all
	scripts/bench.sh

install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/libvhd.h $(DESTDIR)$(PREFIX)/include/libvhd.h
	install -m 644 $(B)/libvhd.a $(DESTDIR)$(LIBDIR)/libvhd.a
	install -m 755 $(B)/libvhd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libvhd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libvhd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libvhd.so
	install -m 644 $(B)/libvhd.pc $(DESTDIR)$(LIBDIR)/pkgconfig/libvhd.pc
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	for m in $(MANPAGES); do \
	  sec=$${m##*.}; install -d $(DESTDIR)$(PREFIX)/share/man/man$$sec; \
	  install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$sec/; \
	done

clean:
	rm -rf build build-asan

-include tests/fuzz/fuzz.mk
-include $(LIB_OBJS:.o=.d) $(TOOL_OBJS:.o=.d) $(NBD_OBJS:.o=.d) \
         $(FUSE_OBJS:.o=.d) $(TESTS:=.d)
