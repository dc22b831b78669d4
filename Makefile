# SPDX-License-Identifier: GPL-2.0
#
# make            build dm-fvd/dm-fvd.ko and the tools
# make deps       install the Debian packages the project needs
# make check      static checks, tool tests, fuzzing, KUnit on UML, dmsetup
#                 tests in a QEMU guest; ends with 'N passed, N failed'
# make demo       boot the guest and show an FVD disk over an ext4 base image
# make bench      dm-fvd against dm-linear, dm-thin, dm-snapshot, dm-clone
#                 and qcow2 in one guest boot; writes bench/results/DATE.md
# make install    the module into /lib/modules/<release>/updates (depmod),
#                 the tools into $(PREFIX)/sbin, man pages and docs;
#                 make uninstall takes them out again (with DESTDIR for
#                 staging: no depmod)
# make deb        deb/dm-fvd-dkms_<version>_all.deb and
#                 deb/fvd-tools_<version>_amd64.deb
#
# KDIR selects the kernel to build against: the running kernel's build tree
# when it has one, else the newest Debian linux-headers-*-amd64.

RUNNING_KDIR := /lib/modules/$(shell uname -r)/build
KDIR ?= $(if $(wildcard $(RUNNING_KDIR)/Makefile),$(RUNNING_KDIR),$(lastword $(sort $(wildcard /usr/src/linux-headers-*-amd64))))

CC ?= cc
TOOL_CFLAGS := -O2 -g -Wall -Wextra -Werror -std=gnu11 -Itools -Idm-fvd
TOOLS := tools/fvd-create tools/fvd-check tools/fvdsetup tools/fvdsetup-generator \
	tests/dmtest/fvd-sbedit
SHARED_SRC := dm-fvd/fvd-format.c tools/fvd-crc32c.c tools/fvd-storage.c tools/fvd-origin.c tools/fvd-profile-file.c
SHARED_HDR := dm-fvd/fvd-format.h dm-fvd/fvd-status.h dm-fvd/fvd-version.h tools/fvd-user.h tools/fvd-tool.h tools/fvd-storage.h tools/fvd-origin.h tools/fvd-profile-file.h

# The one version, from dm-fvd/fvd-version.h.
VERSION := $(shell sed -n 's/^\#define FVD_VERSION_\(MAJOR\|MINOR\|PATCH\)[[:space:]]*\([0-9]*\)$$/\2/p' \
	dm-fvd/fvd-version.h | paste -sd.)
# The release the headers are for (Debian's 6.1 headers have the upstream
# version in include/config/kernel.release; utsrelease.h is what uname says).
KRELEASE = $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"$$/\1/p' $(KDIR)/include/generated/utsrelease.h 2>/dev/null)
PREFIX ?= /usr/local
DESTDIR ?=
MAN_PAGES := man/fvd-create.8 man/fvd-check.8 man/fvdsetup.8 man/fvdsetup-generator.8 \
	man/fvdtab.5
# systemd and udev read /usr/local/lib as well as /usr/lib
GENERATOR_DIR := $(PREFIX)/lib/systemd/system-generators
UDEV_RULES_DIR := $(PREFIX)/lib/udev/rules.d

DEB_PACKAGES := build-essential qemu-system-x86 busybox-static dmsetup fio \
	linux-headers-amd64 linux-source-6.1 flex bison bc libelf-dev \
	libssl-dev sparse e2fsprogs cpio kmod file python3 xz-utils \
	clang libclang-rt-14-dev nbd-server nbd-client open-iscsi iproute2 mmdebstrap \
	lintian mandoc groff-base
# make bench also runs qcow2 through qemu-nbd and draws its chart
BENCH_PACKAGES := qemu-utils gnuplot-nox

.PHONY: all module tools deps bench-deps check kunit dmtest static fuzz demo bench bench-storm clean \
	version install uninstall deb

all: module tools

module:
	@test -n "$(KDIR)" || { echo "no kernel build tree: run 'make deps' or set KDIR" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR)/dm-fvd CONFIG_DM_FVD=m modules

tools: $(TOOLS)

tools/fvd-create: tools/fvd-create.c $(SHARED_SRC) $(SHARED_HDR)
	$(CC) $(TOOL_CFLAGS) -o $@ $< $(SHARED_SRC)

tools/fvd-check: tools/fvd-check.c $(SHARED_SRC) $(SHARED_HDR)
	$(CC) $(TOOL_CFLAGS) -o $@ $< $(SHARED_SRC)

tools/fvdsetup: tools/fvdsetup.c $(SHARED_SRC) $(SHARED_HDR)
	$(CC) $(TOOL_CFLAGS) -o $@ $< $(SHARED_SRC)

tools/fvdsetup-generator: tools/fvdsetup-generator.c
	$(CC) $(TOOL_CFLAGS) -o $@ $<

tests/dmtest/fvd-sbedit: tests/dmtest/fvd-sbedit.c $(SHARED_SRC) $(SHARED_HDR)
	$(CC) $(TOOL_CFLAGS) -o $@ $< $(SHARED_SRC)

version:
	@echo $(VERSION)

install: module tools/fvd-create tools/fvd-check tools/fvdsetup tools/fvdsetup-generator
	@test -n "$(KRELEASE)" || { echo "no kernel release in $(KDIR)" >&2; exit 1; }
	@# Unsigned: the distribution's signing key is not in its headers (a
	@# Secure Boot host signs through DKMS, see the README).
	$(MAKE) -C $(KDIR) M=$(CURDIR)/dm-fvd CONFIG_DM_FVD=m CONFIG_MODULE_SIG_ALL= \
		INSTALL_MOD_DIR=updates $(if $(DESTDIR),INSTALL_MOD_PATH=$(DESTDIR)) \
		modules_install
	$(if $(DESTDIR),,depmod $(KRELEASE))
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/doc/dm-fvd \
		$(DESTDIR)$(GENERATOR_DIR) $(DESTDIR)$(UDEV_RULES_DIR)
	install -m 755 tools/fvd-create tools/fvd-check tools/fvdsetup $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 tools/fvdsetup-generator $(DESTDIR)$(GENERATOR_DIR)/
	install -m 644 udev/60-dm-fvd.rules $(DESTDIR)$(UDEV_RULES_DIR)/
	for m in $(MAN_PAGES); do \
		sed 's/@VERSION@/$(VERSION)/' $$m \
			>$(DESTDIR)$(PREFIX)/share/man/man$${m##*.}/$$(basename $$m) || exit 1; \
	done
	install -m 644 Documentation/dm-fvd.rst README.md $(DESTDIR)$(PREFIX)/share/doc/dm-fvd/

uninstall:
	rm -f $(DESTDIR)/lib/modules/$(KRELEASE)/updates/dm-fvd.ko*
	$(if $(DESTDIR),,depmod $(KRELEASE))
	rm -f $(DESTDIR)$(PREFIX)/sbin/fvd-create $(DESTDIR)$(PREFIX)/sbin/fvd-check \
		$(DESTDIR)$(PREFIX)/sbin/fvdsetup
	rm -f $(foreach m,$(MAN_PAGES),$(DESTDIR)$(PREFIX)/share/man/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	rm -f $(DESTDIR)$(GENERATOR_DIR)/fvdsetup-generator $(DESTDIR)$(UDEV_RULES_DIR)/60-dm-fvd.rules
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/dm-fvd

deb:
	@packaging/make-deb

# install_packages PACKAGES: apt-get install those not installed yet
define install_packages
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "all packages present"; fi
endef

deps:
	$(call install_packages,$(DEB_PACKAGES))

bench-deps: deps
	$(call install_packages,$(BENCH_PACKAGES))

check: deps
	@tests/run-all

kunit:
	@tests/kunit/run

dmtest: deps
	@tests/dmtest/run

static:
	@tests/static/run

fuzz:
	@tests/fuzz/run

demo: deps
	@scripts/demo

bench: bench-deps
	@bench/run

# the boot benchmark over a network origin (bench/storm)
bench-storm: bench-deps
	@bench/storm

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR)/dm-fvd clean
	rm -f $(TOOLS)
