#!/usr/bin/env bash
# Checks an APK from build_apk.sh without a device; exit status 1 and one line per failed check.
#
#   bash android_demo/verify_apk.sh [APK]          (default android_demo/build/fineprune-demo.apk)
#
# Signature (apksigner verify), manifest (aapt2 dump badging: package, minSdk/targetSdk from versions.properties,
# launcher activity, arm64-v8a native code), the interpreter's library for arm64-v8a, MainActivity and
# org.tensorflow.lite.Interpreter in the dex files (dexdump), the demo assets with every .tflite stored
# uncompressed, and 4 KB page alignment of the stored native libraries (zipalign -c -p 4). Prints the ELF LOAD
# segment alignment of each native library (16 KB-page devices: see docs/android.md).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
apk=$(realpath "${1:-$HERE/build/fineprune-demo.apk}")
die() { echo "verify_apk.sh: $*" >&2; exit 2; }
[ -f "$apk" ] || die "no APK at $apk (run android_demo/build_apk.sh)"
for tool in apksigner aapt2 dexdump unzip zipalign; do
  package=$tool; [ "$tool" = aapt2 ] && package=aapt
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian package: $package)"
done
# shellcheck source=artifacts.sh
source "$HERE/artifacts.sh"

failures=0
fail() { echo "verify_apk.sh: FAILED: $*" >&2; failures=$((failures + 1)); }
pass() { echo "  ok  $*"; }

echo "verify_apk.sh: $apk ($(( $(stat -c %s "$apk") / 1024 )) KiB)"
if signers=$(apksigner verify -v "$apk" 2>&1); then
  schemes=$(grep -E 'scheme.*: true' <<< "$signers" | sed -E 's/Verified using (v[0-9]).*/\1/' | paste -sd+)
  pass "signature: $schemes verified"
else
  fail "apksigner verify: $(grep -m1 -E 'ERROR|Exception' <<< "$signers" || head -1 <<< "$signers")"
fi

expect_badging() {  # PATTERN WHAT
  if grep -qF -- "$1" <<< "$badging"; then pass "badging: $2"; else fail "badging lacks $1 ($2)"; fi
}
if badging=$(aapt2 dump badging "$apk" 2>&1); then
  expect_badging "package: name='$(version app.id)'" "package $(version app.id)"
  expect_badging "sdkVersion:'$(version android.minSdk)'" "minSdk $(version android.minSdk)"
  expect_badging "targetSdkVersion:'$(version android.targetSdk)'" "targetSdk $(version android.targetSdk)"
  expect_badging "launchable-activity: name='$(version app.id).MainActivity'" "launcher activity MainActivity"
  expect_badging "'arm64-v8a'" "native code for arm64-v8a"
else
  fail "aapt2 dump badging: $(head -1 <<< "$badging")"
fi

listing=$(unzip -v "$apk")
stored() { awk -v name="$1" '$NF == name { print $2 }' <<< "$listing"; }
lib=lib/arm64-v8a/libtensorflowlite_jni.so
case "$(stored "$lib")" in
  Stored) pass "$lib (stored)" ;;
  "") fail "$lib is missing" ;;
  *) fail "$lib is compressed (the manifest says extractNativeLibs=false)" ;;
esac

dex_classes=$(dexdump "$apk" 2>/dev/null | sed -n "s/^  Class descriptor  : 'L\(.*\);'$/\1/p" || true)
main_activity="$(version app.id | tr . /)/MainActivity"
for class in "$main_activity" org/tensorflow/lite/Interpreter org/tflitefineprune/core/AutoRecipe; do
  if grep -qxF "$class" <<< "$dex_classes"; then pass "dex: $class"; else fail "dex lacks $class"; fi
done

[ -n "$(stored assets/manifest.json)" ] && pass "assets/manifest.json" || fail "assets/manifest.json is missing"
models=$(awk '$NF ~ /^assets\/.*\.tflite$/ { print $2, $NF }' <<< "$listing")
if [ -z "$models" ]; then
  fail "no assets/*.tflite"
else
  while read -r method name; do
    [ "$method" = Stored ] && pass "$name (stored)" || fail "$name is compressed ($method)"
  done <<< "$models"
fi

if zipalign -c -p 4 "$apk" >/dev/null 2>&1; then pass "zipalign -c -p 4"; else fail "zipalign -c -p 4"; fi

# Informational: 16 KB-page devices need LOAD segments aligned to 16 KB (0x4000).
if command -v readelf >/dev/null; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  unzip -q "$apk" 'lib/*' -d "$tmp" 2>/dev/null || true
  shopt -s nullglob
  for so in "$tmp"/lib/*/*.so; do
    align=$(readelf -lW "$so" | awk '$1 == "LOAD" { print $NF }' | sort -u | paste -sd,)
    echo "  --  ${so#"$tmp"/}: ELF LOAD alignment $align"
  done
fi

[ "$failures" -eq 0 ] || { echo "verify_apk.sh: $failures check(s) failed" >&2; exit 1; }
echo "verify_apk.sh: all checks passed"
