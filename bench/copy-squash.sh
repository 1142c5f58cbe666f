#!/usr/bin/env bash
# Benchmark: whittle copy / squash against skopeo copy and umoci unpack.
#
# Usage: bench/copy-squash.sh [--strict] [--rebuild-image] [--image-only] [--verify] [-h|--help]
#
#   --strict          exit non-zero when the targets are missed (or whittle errors)
#   --rebuild-image   regenerate the cached test image even if it exists
#   --image-only      build (or reuse) the test image, print its OCI layout path, stop
#   --verify          after timing, check whittle's outputs with independent readers
#                     (skopeo inspect; umoci unpack of the squashed image, diffed
#                     against umoci's unpack of the source image)
#
# Environment:
#   BENCH_DIR   cache + scratch directory (default /var/tmp/whittle-bench)
#   REPEAT      timed runs per command; the median is reported (default 3)
#   WARMUP      untimed full runs of every command before timing (default 0;
#               the inputs are always read once with cat to warm the page cache)
#
# See bench/README.md.
set -euo pipefail

# ---------------------------------------------------------------------------
# arguments, environment
# ---------------------------------------------------------------------------
STRICT=0
IMAGE_ONLY=0
REBUILD=0
VERIFY=0
for arg in "$@"; do
    case "$arg" in
        --strict) STRICT=1 ;;
        --rebuild-image) REBUILD=1 ;;
        --image-only) IMAGE_ONLY=1 ;;
        --verify) VERIFY=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "copy-squash.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

BENCH_DIR=${BENCH_DIR:-/var/tmp/whittle-bench}
REPEAT=${REPEAT:-3}
WARMUP=${WARMUP:-0}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "REPEAT must be a positive integer" >&2; exit 2; }
[[ $WARMUP =~ ^[0-9]+$ ]] || { echo "WARMUP must be a non-negative integer" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $BENCH_DIR != *[[:space:]]* && $ROOT != *[[:space:]]* ]] ||
    { echo "copy-squash.sh: BENCH_DIR and the repository path must not contain whitespace" >&2; exit 2; }
IMAGE_VERSION=2                         # bump when the image recipe changes
IMG=$BENCH_DIR/image                    # OCI layout, ref "bench"
REF_ARCHIVE=$BENCH_DIR/ref-archive.tar  # docker-archive written by skopeo (input of copy-back)
STAMP=$IMG/.whittle-bench-image-v$IMAGE_VERSION
WORK=$BENCH_DIR/work
RSS_LIMIT_MB=200
export LC_ALL=C

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'copy-squash.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# prerequisites
# ---------------------------------------------------------------------------
ensure_tools() {
    local need=()
    command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
    command -v umoci >/dev/null 2>&1 || need+=(umoci)
    [[ -x /usr/bin/time ]] || need+=(time)
    if ((${#need[@]})); then
        [[ $(id -u) -eq 0 ]] || die "missing ${need[*]} and not root: apt-get install -y ${need[*]}"
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
            { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
    fi
    local t
    for t in tar gzip sha256sum split base64 seq stat du; do
        command -v "$t" >/dev/null 2>&1 || die "missing $t"
    done
    command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH"
}

# skopeo without a policy.json dependency
skopeo_() { skopeo --insecure-policy "$@"; }

# ---------------------------------------------------------------------------
# 1. the test image (OCI layout, written by hand, cached)
# ---------------------------------------------------------------------------
if command -v pigz >/dev/null 2>&1; then GZIP_CMD=(pigz -1 -n -c); else GZIP_CMD=(gzip -1 -n -c); fi

text_file() { # PATH BYTES TAG : very compressible, log/changelog-like text
    # (seq is cut short by head: its SIGPIPE is expected, hence the "|| :")
    { seq -f "%09.0f $3 lorem ipsum dolor sit amet, consectetur adipiscing elit; status=ok" \
        1 $(($2 / 60 + 1)) || :; } | head -c "$2" >"$1"
}
b64_file() { # PATH BYTES : base64 text, mildly compressible (~25%); ~BYTES*77/76 long
    head -c $(($2 * 3 / 4)) /dev/urandom | base64 -w 76 >"$1"
}
rand_file() { # PATH BYTES : incompressible
    head -c "$2" /dev/urandom >"$1"
}
MiB=$((1024 * 1024))

# Layer 1 "base": ~280 MiB — compressible docs, binaries, base64 data, symlinks.
gen_layer1() {
    local d=$1 i
    mkdir -p "$d"/{etc,bin,usr/bin,usr/lib,usr/share/doc,usr/share/data,tmp,var/log}
    for i in $(seq -w 0 149); do
        mkdir -p "$d/usr/share/doc/pkg$i"
        text_file "$d/usr/share/doc/pkg$i/changelog" $MiB "pkg$i"
    done
    for i in $(seq -w 0 39); do rand_file "$d/usr/lib/lib$i.so" $((2 * MiB)); done
    for i in $(seq -w 0 19); do b64_file "$d/usr/share/data/blob$i.b64" $((5 * MiB / 2)); done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$d/etc/passwd"
    printf 'NAME="bench"\nID=bench\n' >"$d/etc/os-release"
    printf '#!/bin/sh\necho bench\n' >"$d/usr/bin/busybox"
    chmod 755 "$d/usr/bin/busybox"
    ln -s ../usr/bin/busybox "$d/bin/sh"
    ln -s busybox "$d/usr/bin/ls"
    chmod 1777 "$d/tmp"
}

# Layer 2 "runtime": 360 MiB incompressible, plus a hardlink.
gen_layer2() {
    local d=$1 i
    mkdir -p "$d/opt/runtime/bin"
    for i in $(seq -w 0 7); do rand_file "$d/opt/runtime/chunk$i.bin" $((45 * MiB)); done
    printf '#!/bin/sh\nexec /opt/runtime/chunk00.bin "$@"\n' >"$d/opt/runtime/bin/run"
    chmod 755 "$d/opt/runtime/bin/run"
    ln "$d/opt/runtime/bin/run" "$d/opt/runtime/bin/run-hardlink"
}

# Layer 3 "node_modules": ~20 000 small files (1.0-4.8 KB) in 20 packages.
gen_layer3() {
    local d=$1 p bs
    for p in $(seq -w 0 19); do
        mkdir -p "$d/app/node_modules/pkg$p/lib"
        bs=$((1000 + 10#$p * 200))
        head -c $((bs * 1000 * 3 / 4)) /dev/urandom | base64 -w 76 |
            split -b "$bs" -a 4 -d - "$d/app/node_modules/pkg$p/lib/f_"
        printf '{"name":"pkg%s","version":"1.0.%s"}\n' "$p" "$p" >"$d/app/node_modules/pkg$p/package.json"
    done
}

# Layer 4 "app": ~200 MiB — incompressible assets, compressible logs.
gen_layer4() {
    local d=$1 i
    mkdir -p "$d/app/assets" "$d/app/logs"
    for i in $(seq -w 0 99); do rand_file "$d/app/assets/img$i.png" $MiB; done
    for i in $(seq -w 0 99); do text_file "$d/app/logs/app$i.log" $MiB "log$i"; done
    printf 'console.log("bench")\n' >"$d/app/index.js"
}

# Layer 5 "patch": deletes and overwrites files of lower layers.
#   .wh.NAME whiteouts for a 45 MiB file, a whole doc directory, 500 small files
#   and a symlink; an opaque directory (.wh..wh..opq) replacing pkg19;
#   overwritten libraries and changelogs; one new 50 MiB file.
gen_layer5() {
    local d=$1 i
    mkdir -p "$d/opt/runtime" "$d/usr/share/doc" "$d/usr/bin" "$d/usr/lib" \
        "$d/app/node_modules/pkg00/lib" "$d/app/node_modules/pkg19/lib" "$d/app/logs"
    : >"$d/opt/runtime/.wh.chunk03.bin"
    : >"$d/usr/share/doc/.wh.pkg010"
    : >"$d/usr/bin/.wh.ls"
    (cd "$d/app/node_modules/pkg00/lib" && touch .wh.f_{0000..0499})
    : >"$d/app/node_modules/pkg19/.wh..wh..opq"
    for i in $(seq -w 0 99); do b64_file "$d/app/node_modules/pkg19/lib/g_$i" 4096; done
    for i in $(seq -w 0 9); do rand_file "$d/usr/lib/lib$i.so" $((2 * MiB)); done
    for i in $(seq -w 20 39); do
        mkdir -p "$d/usr/share/doc/pkg$i"
        text_file "$d/usr/share/doc/pkg$i/changelog" $MiB "patched$i"
    done
    rand_file "$d/opt/runtime/chunk08.bin" $((50 * MiB))
    text_file "$d/app/logs/app00.log" 4096 patched
}

# Layer 6 "models": ~150 MiB — large blobs, text, a symlink; overwrites a layer-5 file.
gen_layer6() {
    local d=$1 i
    mkdir -p "$d/usr/local/share/models" "$d/usr/local/share/corpus" "$d/opt/runtime" "$d/usr/local/bin"
    for i in 0 1 2; do rand_file "$d/usr/local/share/models/m$i.bin" $((40 * MiB)); done
    for i in $(seq -w 0 14); do text_file "$d/usr/local/share/corpus/c$i.txt" $((2 * MiB)) "corpus$i"; done
    rand_file "$d/opt/runtime/chunk08.bin" $((10 * MiB))
    ln -s ../share/models/m0.bin "$d/usr/local/bin/model"
}

LAYER_NAMES=(base runtime node_modules app patch models)

build_image() {
    if [[ -f $STAMP && -f $REF_ARCHIVE && $REBUILD -eq 0 ]]; then
        log "using cached image $IMG (--rebuild-image to regenerate)"
        return
    fi
    rm -rf "$IMG" "$REF_ARCHIVE" "$BENCH_DIR/image.tmp" "$BENCH_DIR/src"
    local tmp=$BENCH_DIR/image.tmp src=$BENCH_DIR/src
    mkdir -p "$tmp/blobs/sha256" "$src"
    local -a diff_ids=() digests=() sizes=() usizes=()
    local i n=${#LAYER_NAMES[@]} t0=$SECONDS
    for ((i = 1; i <= n; i++)); do
        local d=$src/l$i
        log "generating layer $i/$n (${LAYER_NAMES[i - 1]})"
        rm -rf "$d" && mkdir -p "$d"
        "gen_layer$i" "$d"
        # top-level names without "./", tar recurses and sorts the rest
        local -a top=()
        mapfile -t top < <(cd "$d" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort)
        tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
            -C "$d" -cf "$src/l$i.tar" -- "${top[@]}"
        rm -rf "$d"
        sha256sum "$src/l$i.tar" >"$src/l$i.diffid" &
        "${GZIP_CMD[@]}" "$src/l$i.tar" >"$src/l$i.tar.gz"
        wait $!
        local diff dig
        diff=$(cut -d' ' -f1 "$src/l$i.diffid")
        dig=$(sha256sum "$src/l$i.tar.gz" | cut -d' ' -f1)
        usizes+=("$(stat -c %s "$src/l$i.tar")")
        sizes+=("$(stat -c %s "$src/l$i.tar.gz")")
        mv "$src/l$i.tar.gz" "$tmp/blobs/sha256/$dig"
        rm -f "$src/l$i.tar" "$src/l$i.diffid"
        diff_ids+=("sha256:$diff")
        digests+=("sha256:$dig")
    done
    rm -rf "$src"

    # config
    local j sep diffs="" hist=""
    for ((j = 0; j < n; j++)); do
        sep=$([[ $j -gt 0 ]] && echo , || true)
        diffs+="$sep\"${diff_ids[j]}\""
        hist+="$sep{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"bench layer $((j + 1)): ${LAYER_NAMES[j]}\"}"
    done
    local cfg
    cfg=$(printf '{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/app"},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' "$diffs" "$hist")
    printf '%s' "$cfg" >"$tmp/config.json"
    local cfg_dig cfg_size
    cfg_dig=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
    cfg_size=$(stat -c %s "$tmp/config.json")
    mv "$tmp/config.json" "$tmp/blobs/sha256/$cfg_dig"

    # manifest
    local layers=""
    for ((j = 0; j < n; j++)); do
        sep=$([[ $j -gt 0 ]] && echo , || true)
        layers+="$sep{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"${digests[j]}\",\"size\":${sizes[j]}}"
    done
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$cfg_dig" "$cfg_size" "$layers" >"$tmp/manifest.json"
    local man_dig man_size
    man_dig=$(sha256sum "$tmp/manifest.json" | cut -d' ' -f1)
    man_size=$(stat -c %s "$tmp/manifest.json")
    mv "$tmp/manifest.json" "$tmp/blobs/sha256/$man_dig"

    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
        "$man_dig" "$man_size" >"$tmp/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$tmp/oci-layout"

    # validate with an independent reader
    local nl
    nl=$(skopeo_ inspect --format '{{len .Layers}}' "oci:$tmp:bench") ||
        die "skopeo inspect rejected the generated image"
    ((nl == n)) || die "skopeo inspect shows $nl layers, expected $n"
    local tot_c=0 tot_u=0
    for ((j = 0; j < n; j++)); do tot_c=$((tot_c + sizes[j])); tot_u=$((tot_u + usizes[j])); done
    ((tot_u >= 1100 * 1000 * 1000)) || die "image too small: $tot_u bytes uncompressed"
    printf '%s\n' "${usizes[@]}" >"$tmp/.layer-usizes"
    printf '%s\n' "${sizes[@]}" >"$tmp/.layer-sizes"
    mv "$tmp" "$IMG"

    # the docker-archive used as the source of the copy-back pair, written by skopeo
    log "writing reference docker-archive with skopeo"
    skopeo_ copy -q "oci:$IMG:bench" "docker-archive:$REF_ARCHIVE" >/dev/null
    touch "$STAMP"
    log "image built in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------
# 2. whittle
# ---------------------------------------------------------------------------
build_whittle() {
    log "cargo build --release -p whittle"
    (cd "$ROOT" && cargo build --release -q -p whittle) || die "cargo build --release -p whittle failed"
    local tdir
    tdir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    WHITTLE=${tdir:-$ROOT/target}/release/whittle
    [[ -x $WHITTLE ]] || die "built binary not found at $WHITTLE"
}

# ---------------------------------------------------------------------------
# 3. measurements
# ---------------------------------------------------------------------------
declare -A WALLS=() RSSES=() OUTSZ=() ERRS=()
ROW_ORDER=()   # "op|tool|role" in display order; role = peer | whittle

warm() { cat "$@" >/dev/null; }
warm_dir() { find "$1" -type f -exec cat {} + >/dev/null; }

# run_timed KEY OUT -- CMD...   (one timed run; output path OUT removed before and after)
run_timed() {
    local key=$1 out=$2; shift 3
    local tf=$WORK/time.txt lf=$WORK/cmd.log rc=0
    rm -rf "$out"; sync
    /usr/bin/time -f '%e %M %U %S' -o "$tf" -- "$@" >"$lf" 2>&1 || rc=$?
    if ((rc != 0)); then
        local msg
        msg=$(grep -v '^Command exited with non-zero status' "$lf" | tail -n 20 || true)
        ERRS[$key]="exit $rc: $msg"
        log "$key FAILED (exit $rc):"
        sed 's/^/    /' <<<"$msg" >&2
        rm -rf "$out"
        return 1
    fi
    local wall rss usr sys
    read -r wall rss usr sys < <(tail -n 1 "$tf")
    OUTSZ[$key]=$(du -sb "$out" 2>/dev/null | cut -f1 || echo 0)
    WALLS[$key]+="$wall "
    RSSES[$key]+="$rss "
    log "$(printf '%-44s %7.2f s wall %7.2f s cpu %7.1f MB rss  out %5.0f MB' "$key" "$wall" \
        "$(awk -v u="$usr" -v s="$sys" 'BEGIN{print u+s}')" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" \
        "$(awk -v b="${OUTSZ[$key]}" 'BEGIN{print b/1048576}')")"
    [[ ${KEEP_OUTPUT:-0} == 1 ]] || rm -rf "$out"
}

# bench_op OP INPUT_FILES... -- then rows via globals PEER_CMD etc.
# Each row: "tool-label|role|out|cmd..." — commands interleaved per repetition,
# order alternated between repetitions.
bench_op() {
    local op=$1; shift
    local -n rows=$1
    local r i n=${#rows[@]}
    for ((i = 0; i < n; i++)); do
        local label role
        IFS='|' read -r label role _ _ <<<"${rows[i]}"
        ROW_ORDER+=("$op|$label|$role")
    done
    for ((r = 0; r < WARMUP + REPEAT; r++)); do
        local -a order=()
        if ((r % 2 == 0)); then for ((i = 0; i < n; i++)); do order+=("$i"); done
        else for ((i = n - 1; i >= 0; i--)); do order+=("$i"); done; fi
        for i in "${order[@]}"; do
            local label role out cmd key
            IFS='|' read -r label role out cmd <<<"${rows[i]}"
            key="$op|$label"
            [[ -n ${ERRS[$key]:-} ]] && continue   # failed once: do not retry
            local -a argv
            read -r -a argv <<<"$cmd"
            if ((r < WARMUP)); then
                rm -rf "$out"; "${argv[@]}" >/dev/null 2>&1 || true; rm -rf "$out"
                continue
            fi
            run_timed "$key" "$out" -- "${argv[@]}" || true
        done
    done
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{if(NR==0){print ""; exit} print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
maxof() { tr ' ' '\n' | grep . | sort -g | tail -n 1; }

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
main() {
    local t_start=$SECONDS
    ensure_tools
    mkdir -p "$BENCH_DIR"
    build_image
    if ((IMAGE_ONLY)); then echo "$IMG"; return 0; fi
    build_whittle
    rm -rf "$WORK"; mkdir -p "$WORK"

    local -a usz csz
    mapfile -t usz <"$IMG/.layer-usizes"
    mapfile -t csz <"$IMG/.layer-sizes"
    local tu=0 tc=0 x
    for x in "${usz[@]}"; do tu=$((tu + x)); done
    for x in "${csz[@]}"; do tc=$((tc + x)); done

    {
        echo "whittle benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "host: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
        echo "tools: $(skopeo --version), $(umoci --version), $("$WHITTLE" --version 2>/dev/null || echo whittle)"
        printf 'image: %d layers, %.0f MB uncompressed, %.0f MB gzip (oci:%s:bench)\n' \
            "${#usz[@]}" "$(awk -v b=$tu 'BEGIN{print b/1048576}')" "$(awk -v b=$tc 'BEGIN{print b/1048576}')" "$IMG"
        echo "runs: REPEAT=$REPEAT (median), WARMUP=$WARMUP, inputs pre-read into the page cache"
        echo "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee "$WORK/header.txt" >&2
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load1" 'BEGIN{exit !(l > 0.5)}'; then
        log "warning: the machine is not idle (load $load1): timings will be noisy"
    fi

    local O=$WORK/out
    # --- copy oci -> docker-archive
    warm_dir "$IMG"
    local -a rows_to=(
        "skopeo copy|peer|$O.tar|skopeo --insecure-policy copy -q oci:$IMG:bench docker-archive:$O.tar"
        "whittle copy|whittle|$O.tar|$WHITTLE copy oci:$IMG:bench docker-archive:$O.tar"
    )
    bench_op "oci -> docker-archive" rows_to

    # --- copy docker-archive -> oci
    warm "$REF_ARCHIVE"
    local -a rows_back=(
        "skopeo copy|peer|$O.oci|skopeo --insecure-policy copy -q --dest-oci-accept-uncompressed-layers docker-archive:$REF_ARCHIVE oci:$O.oci:bench"
        "whittle copy|whittle|$O.oci|$WHITTLE copy --compression none docker-archive:$REF_ARCHIVE oci:$O.oci:bench"
    )
    bench_op "docker-archive -> oci" rows_back

    # --- flatten: umoci unpack vs whittle squash
    warm_dir "$IMG"
    local -a rows_sq=(
        "umoci unpack|peer|$O.bundle|umoci unpack --image $IMG:bench $O.bundle"
        "whittle squash (gzip)|whittle|$O.sq|$WHITTLE squash oci:$IMG:bench oci:$O.sq:bench"
        "whittle squash (none)|whittle|$O.sqn|$WHITTLE squash --compression none oci:$IMG:bench oci:$O.sqn:bench"
    )
    bench_op "flatten oci image" rows_sq

    # --- table
    local table=$WORK/table.txt fail=() row op label role key w m peer_w=""
    {
        printf '| %-22s | %-21s | %7s | %11s | %20s |\n' operation tool "wall s" "peak RSS MB" "ratio (whittle/peer)"
        printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..23})" \
            "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..22})"
    } >"$table"
    declare -A PEER_WALL=()
    for row in "${ROW_ORDER[@]}"; do
        IFS='|' read -r op label role <<<"$row"
        key="$op|$label"
        if [[ -n ${ERRS[$key]:-} ]]; then
            printf '| %-22s | %-21s | %7s | %11s | %20s |\n' "$op" "$label" ERROR - - >>"$table"
            [[ $role == whittle ]] && fail+=("$label on $op errored")
            continue
        fi
        w=$(median <<<"${WALLS[$key]}")
        m=$(median <<<"${RSSES[$key]}")
        local ratio="-"
        if [[ $role == peer ]]; then
            PEER_WALL[$op]=$w
        elif [[ -n ${PEER_WALL[$op]:-} ]]; then
            ratio=$(awk -v a="$w" -v b="${PEER_WALL[$op]}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')
        fi
        printf '| %-22s | %-21s | %7.2f | %11.1f | %20s |\n' "$op" "$label" "$w" \
            "$(awk -v k="$m" 'BEGIN{print k/1024}')" "$ratio" >>"$table"
        if [[ $role == whittle ]]; then
            local mx
            mx=$(maxof <<<"${RSSES[$key]}")
            if ((mx >= RSS_LIMIT_MB * 1024)); then
                fail+=("$label on $op: peak RSS $(awk -v k="$mx" 'BEGIN{printf "%.1f", k/1024}') MB >= $RSS_LIMIT_MB MB")
            fi
            if [[ $label == "whittle copy" && -n ${PEER_WALL[$op]:-} ]] &&
                awk -v a="$w" -v b="${PEER_WALL[$op]}" 'BEGIN{exit !(a>b)}'; then
                fail+=("whittle copy on $op: ${w} s > skopeo ${PEER_WALL[$op]} s")
            fi
        fi
    done
    [[ -z ${ERRS["oci -> docker-archive|skopeo copy"]:-} && -z ${ERRS["docker-archive -> oci|skopeo copy"]:-} ]] ||
        fail+=("skopeo errored: copy target cannot be evaluated")

    local result
    if ((${#fail[@]} == 0)); then
        result="RESULT: PASS (whittle copy wall <= skopeo copy wall both directions; every whittle peak RSS < $RSS_LIMIT_MB MB)"
    else
        result="RESULT: FAIL — $(printf '%s; ' "${fail[@]}")"
        result=${result%; }
    fi

    # --- optional verification of whittle's outputs
    local verify_txt=""
    if ((VERIFY)); then verify_txt=$(verify_outputs); fi

    {
        echo
        cat "$WORK/header.txt"
        echo
        cat "$table"
        echo "load average after timing: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo
        if ((${#ERRS[@]})); then
            local k
            for row in "${ROW_ORDER[@]}"; do
                k=${row%|*}
                [[ -n ${ERRS[$k]:-} ]] && printf 'error: %s: %s\n' "$k" "${ERRS[$k]}"
            done
            echo
        fi
        [[ -n $verify_txt ]] && printf '%s\n\n' "$verify_txt"
        echo "$result"
        echo "total time: $((SECONDS - t_start)) s"
    } | tee "$BENCH_DIR/last-results.txt"

    rm -rf "$WORK"
    if ((STRICT)) && ((${#fail[@]})); then exit 1; fi
    exit 0
}

# --verify: independent readers check whittle's outputs (untimed).
verify_outputs() {
    local O=$WORK/verify ok=1
    rm -rf "$O"; mkdir -p "$O"
    log "verify: whittle copy oci -> docker-archive, read back by skopeo"
    if "$WHITTLE" copy "oci:$IMG:bench" "docker-archive:$O/w.tar" >/dev/null 2>"$O/err" &&
        skopeo_ inspect "docker-archive:$O/w.tar" >/dev/null 2>>"$O/err"; then
        echo "verify: skopeo inspect docker-archive written by whittle: ok"
    else echo "verify: docker-archive written by whittle: FAILED: $(tail -n 3 "$O/err")"; ok=0; fi
    rm -f "$O/w.tar"

    log "verify: docker-archive -> oci: whittle and skopeo write the same config and layer blobs"
    if "$WHITTLE" copy --compression none "docker-archive:$REF_ARCHIVE" "oci:$O/w.oci:bench" >/dev/null 2>"$O/err" &&
        skopeo_ copy -q --dest-oci-accept-uncompressed-layers "docker-archive:$REF_ARCHIVE" "oci:$O/s.oci:bench" >/dev/null 2>>"$O/err"; then
        # the manifests differ only in JSON spelling; compare the blobs they list
        local wl sl
        wl=$(grep -o 'sha256:[0-9a-f]\{64\}' "$O/w.oci/blobs/sha256/$(grep -o 'sha256:[0-9a-f]\{64\}' "$O/w.oci/index.json" | head -n1 | cut -d: -f2)")
        sl=$(grep -o 'sha256:[0-9a-f]\{64\}' "$O/s.oci/blobs/sha256/$(grep -o 'sha256:[0-9a-f]\{64\}' "$O/s.oci/index.json" | head -n1 | cut -d: -f2)")
        if [[ -n $wl && $wl == "$sl" ]]; then echo "verify: config + $(($(wc -l <<<"$wl") - 1)) layer digests identical to skopeo's: ok"
        else echo "verify: whittle's manifest lists different blobs than skopeo's"; ok=0; fi
    else echo "verify: docker-archive -> oci FAILED: $(tail -n 3 "$O/err")"; ok=0; fi
    rm -rf "$O/w.oci" "$O/s.oci"

    log "verify: whittle squash, unpacked by umoci, diffed against umoci unpack of the source"
    if "$WHITTLE" squash "oci:$IMG:bench" "oci:$O/sq:bench" >/dev/null 2>"$O/err" &&
        umoci unpack --image "$O/sq:bench" "$O/b-sq" >/dev/null 2>>"$O/err" &&
        umoci unpack --image "$IMG:bench" "$O/b-src" >/dev/null 2>>"$O/err"; then
        local nl
        nl=$(skopeo_ inspect --format '{{len .Layers}}' "oci:$O/sq:bench" 2>/dev/null || echo "?")
        if diff -r --no-dereference "$O/b-src/rootfs" "$O/b-sq/rootfs" >"$O/diff" 2>&1; then
            echo "verify: squashed image ($nl layer) unpacks to the same tree as the source: ok"
        else
            echo "verify: squashed tree differs from source ($(wc -l <"$O/diff") lines), first lines:"
            head -n 10 "$O/diff" | sed 's/^/    /'
            ok=0
        fi
        # metadata: modes, owners, symlink targets, hardlink counts
        local a b
        a=$(cd "$O/b-src/rootfs" && find . -printf '%p %M %U:%G %l %n\n' | sort | sha256sum)
        b=$(cd "$O/b-sq/rootfs" && find . -printf '%p %M %U:%G %l %n\n' | sort | sha256sum)
        if [[ $a == "$b" ]]; then echo "verify: modes/owners/symlinks/link counts identical: ok"
        else echo "verify: modes/owners/symlinks/link counts differ"; ok=0; fi
    else
        echo "verify: squash/unpack FAILED: $(tail -n 3 "$O/err")"; ok=0
    fi
    rm -rf "$O"
    ((ok)) && echo "verify: all checks passed" || echo "verify: SOME CHECKS FAILED"
}

main
