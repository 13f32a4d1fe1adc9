# ferry: plain GNU make. See README.md.
#   make                 build build/ferry (+ migrate, pageserver links)
#   make test            deps + build + unit tests + fuzz smoke + zdtm suite
#   make demo            deps + build + a real checkpoint/restore and a live migration of a demo process
#   make bench           benchmarks (not part of make test)
#   make lint            clang-tidy, cppcheck, clang-format --dry-run
#   make SANITIZE=1      ASan + UBSan build
#   make install PREFIX=/usr/local
#   BUILD=dir            build into another directory (parallel work trees)

BUILD    ?= build
PREFIX   ?= /usr/local
CC       ?= cc
PKGS     := libprotobuf-c liblz4 libxxhash libcap liburing libsodium
WERROR   ?= -Werror

CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra $(WERROR) -Wno-unused-parameter \
	-Wno-missing-field-initializers -D_GNU_SOURCE -fno-strict-aliasing \
	-Isrc -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS_BASE := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SANITIZE),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
LDFLAGS     += -fsanitize=address,undefined
endif

CFLAGS += $(CFLAGS_BASE)
LDLIBS += $(LDLIBS_BASE)

PROTOS     := $(wildcard images/*.proto proto/*.proto)
PROTO_C    := $(patsubst %.proto,$(BUILD)/gen/%.pb-c.c,$(notdir $(PROTOS)))
PROTO_H    := $(PROTO_C:.c=.h)
PROTO_O    := $(PROTO_C:.c=.o)

# Every module directory is compiled; main.c is only in the binary.
LIB_SRC    := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c tools/*.c))
LIB_OBJ    := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
MAIN_OBJ   := $(BUILD)/obj/src/main.o
LIB        := $(BUILD)/libferry.a

UNIT_SRC   := $(wildcard test/unit/test_*.c)
UNIT_BIN   := $(patsubst test/unit/%.c,$(BUILD)/test/unit/%,$(UNIT_SRC))
ZDTM_LIB   := test/zdtm/lib/zdtmtst.c
ZDTM_SRC   := $(wildcard test/zdtm/static/*.c)
ZDTM_BIN   := $(patsubst test/zdtm/static/%.c,$(BUILD)/test/zdtm/%,$(ZDTM_SRC))
ZDTM_TOOLS := $(patsubst test/zdtm/tools/%.c,$(BUILD)/test/zdtm/tools/%,$(wildcard test/zdtm/tools/*.c))

.PHONY: all deps test unit zdtm negative pstest mtest fuzz bench demo lint install clean
.SECONDARY:

all: $(BUILD)/ferry $(BUILD)/migrate $(BUILD)/pageserver

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: images/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=images --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(CFLAGS) -Wno-unused -c -o $@ $<

$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ) $(PROTO_O)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ferry: $(MAIN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/migrate $(BUILD)/pageserver: $(BUILD)/ferry
	ln -sf ferry $@

# ---- tests ----------------------------------------------------------------
$(BUILD)/test/unit/%: test/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/test/zdtm/%: test/zdtm/static/%.c $(ZDTM_LIB) test/zdtm/lib/zdtmtst.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra $(WERROR) -D_GNU_SOURCE -Itest/zdtm/lib -o $@ $< $(ZDTM_LIB) -lpthread -lrt

# test tools may use the project's own library (image codec, utils)
$(BUILD)/test/zdtm/tools/%: test/zdtm/tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lpthread

# demo and bench programs (not part of the library)
TOOL_PROGS := $(patsubst tools/%.c,$(BUILD)/tools/%,$(wildcard tools/demo/*.c tools/bench/*.c))
$(BUILD)/tools/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lpthread

FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_LIB_SRC := $(filter-out src/main.c,$(wildcard src/common/*.c src/img/*.c))

$(BUILD)/fuzz/%: test/fuzz/%.c $(FUZZ_LIB_SRC) $(PROTO_C) $(PROTO_H)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc -I$(BUILD)/gen \
		$(shell pkg-config --cflags $(PKGS)) -o $@ $< $(FUZZ_LIB_SRC) $(PROTO_C) $(LDLIBS_BASE)

unit: $(UNIT_BIN)
	@./test/run-unit.sh $(BUILD) $(UNIT_BIN)

fuzz: $(FUZZ_BIN)
	@./test/run-fuzz.sh $(BUILD) $(FUZZ_BIN)

zdtm: all $(ZDTM_BIN) $(ZDTM_TOOLS)
	@./test/zdtm/run.sh --build $(BUILD) --flavor all

negative: all $(ZDTM_BIN) $(ZDTM_TOOLS)
	@./test/zdtm/negative.sh --build $(BUILD)

pstest: all $(ZDTM_BIN) $(ZDTM_TOOLS) $(TOOL_PROGS)
	@./test/pageserver/run.sh --build $(BUILD)

mtest: all $(ZDTM_BIN) $(ZDTM_TOOLS) $(TOOL_PROGS)
	@./test/migrate/run.sh --build $(BUILD)

deps:
	@./tools/deps.sh

test: deps
	$(MAKE) all
	@./test/run-all.sh $(BUILD)

bench: all $(ZDTM_TOOLS) $(TOOL_PROGS)
	@./tools/bench.sh $(BUILD)

demo: deps
	$(MAKE) all $(TOOL_PROGS)
	@./tools/demo.sh $(BUILD)

lint: $(PROTO_H)
	@./tools/lint.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	ln -sf ferry $(DESTDIR)$(PREFIX)/bin/migrate
	ln -sf ferry $(DESTDIR)$(PREFIX)/bin/pageserver

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
