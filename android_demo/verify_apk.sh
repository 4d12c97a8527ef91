#!/usr/bin/env bash
# Checks an APK from build_apk.sh without a device; exit status 1 and one line per failed check.
#
#   bash android_demo/verify_apk.sh [APK]              (default android_demo/build/fineprune-demo.apk)
#   bash android_demo/verify_apk.sh --release [APK]    (default android_demo/build/fineprune-demo-release.apk)
#
# Signature (apksigner verify), manifest (aapt2 dump badging: package, minSdk/targetSdk from versions.properties,
# launcher activity, label and icon from resources, the microphone not required, debuggable for the debug build
# only, arm64-v8a native code), the resource table (aapt2 dump resources) holding exactly the entries app/src/main/res
# declares (what the Android Gradle Plugin would include: the interpreter's AARs have no resources), the
# interpreter's library for arm64-v8a, MainActivity and org.tensorflow.lite.Interpreter in the dex files (dexdump),
# the demo assets with every .tflite stored uncompressed, and 4 KB page alignment of the stored native libraries
# (zipalign -c -p 4). Then, per ABI, the ELF LOAD segment alignment of its native libraries and which devices
# can load them (16 KB-page devices: see docs/android.md).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
release=false
if [ "${1:-}" = --release ]; then release=true; shift; fi
default_apk=$HERE/build/fineprune-demo.apk
$release && default_apk=$HERE/build/fineprune-demo-release.apk
apk=$(realpath "${1:-$default_apk}")
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
  expect_badging "application-label:'$(sed -n 's:.*<string name="app_name">\(.*\)</string>.*:\1:p' "$HERE/app/src/main/res/values/strings.xml")'" \
    "label from @string/app_name"
  expect_badging "icon='res/mipmap-anydpi-v26/ic_launcher.xml'" "adaptive launcher icon"
  expect_badging "uses-feature-not-required: name='android.hardware.microphone'" "microphone not required"
  if $release; then
    if grep -q "application-debuggable" <<< "$badging"; then fail "the release APK is debuggable"; else pass "badging: not debuggable"; fi
  else
    expect_badging "application-debuggable" "debuggable (debug build)"
  fi
else
  fail "aapt2 dump badging: $(head -1 <<< "$badging")"
fi

# The resource table against res/: values files declare entries by name (a style's items and a plural's quantities
# are inside one), every other file is one entry named after it (type: its folder without qualifiers).
declared_resources() {
  local file folder type
  for file in "$HERE"/app/src/main/res/*/*; do
    folder=$(basename "$(dirname "$file")")
    type=${folder%%-*}
    if [ "$type" = values ]; then
      grep -oE '^\s*<(string|plurals|color|dimen|style|bool|integer|array|string-array|integer-array)\s+name="[^"]+"' "$file" |
        sed -E 's/^\s*<([a-z-]+)\s+name="([^"]+)"/\1\/\2/; s/^(string|integer)-array\//array\//'
    else
      name=$(basename "$file"); echo "$type/${name%%.*}"
    fi
  done | sort -u
}
if table=$(aapt2 dump resources "$apk" 2>/dev/null); then
  in_apk=$(awk '$1 == "resource" { print $3 }' <<< "$table" | sort -u)
  declared=$(declared_resources)
  if [ "$in_apk" = "$declared" ]; then
    pass "resource table: the $(wc -l <<< "$declared") entries app/src/main/res declares"
  else
    absent=$(comm -23 <(echo "$declared") <(echo "$in_apk"))
    extra=$(comm -13 <(echo "$declared") <(echo "$in_apk"))
    fail "resource table differs from app/src/main/res: $(grep -c . <<< "$absent") declared entries missing" \
      "($(head -5 <<< "$absent" | paste -sd' ')), $(grep -c . <<< "$extra") not declared ($(head -5 <<< "$extra" | paste -sd' '))"
  fi
else
  fail "aapt2 dump resources: the APK has no readable resource table"
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
# The release build's R8 renames and inlines what no rule keeps (the core's classes among them): only the manifest's
# classes and the interpreter's keep their names there.
kept_classes=("$main_activity" org/tensorflow/lite/Interpreter)
$release || kept_classes+=(org/tflitefineprune/core/AutoRecipe)
for class in "${kept_classes[@]}"; do
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

# Which devices can load the native code: Android 15+ devices with 16 KB memory pages map a library only when
# every LOAD segment is aligned to at least 16 KB (0x4000); 4 KB-page devices load both.
if command -v readelf >/dev/null; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  unzip -q "$apk" 'lib/*' -d "$tmp" 2>/dev/null || true
  shopt -s nullglob
  four_kb_only=()
  for abi_dir in "$tmp"/lib/*/; do
    abi=$(basename "$abi_dir")
    smallest=""
    for so in "$abi_dir"*.so; do
      for align in $(readelf -lW "$so" | awk '$1 == "LOAD" { print $NF }'); do
        value=$((align))
        if [ -z "$smallest" ] || [ "$value" -lt "$smallest" ]; then smallest=$value; fi
      done
    done
    [ -n "$smallest" ] || continue
    if [ "$abi" = armeabi-v7a ] || [ "$abi" = x86 ]; then
      echo "  --  $abi: LOAD segments aligned to $((smallest / 1024)) KB: 32-bit code, run by 4 KB-page devices" \
        "(16 KB pages exist on 64-bit devices only)"
    elif [ "$smallest" -ge 16384 ]; then
      echo "  --  $abi: LOAD segments aligned to $((smallest / 1024)) KB: loads on 4 KB- and 16 KB-page devices"
    else
      echo "  --  $abi: LOAD segments aligned to $((smallest / 1024)) KB: loads on 4 KB-page devices only;" \
        "16 KB-page devices (Android 15+) refuse the library or run the app in compatibility mode"
      four_kb_only+=("$abi")
    fi
  done
  if [ ${#four_kb_only[@]} -eq 0 ]; then
    echo "verify_apk.sh: installs and runs on every device of its ABIs, 4 KB and 16 KB pages (Android $(version android.minSdk)+)"
  else
    echo "verify_apk.sh: installs on Android $(version android.minSdk)+ devices of its ABIs; the interpreter loads on" \
      "4 KB-page devices only (${four_kb_only[*]}: 4 KB LOAD segments); a 16 KB-page device (Android 15+, 64-bit)" \
      "refuses it or runs the app in 4 KB compatibility mode"
  fi
fi

[ "$failures" -eq 0 ] || { echo "verify_apk.sh: $failures check(s) failed" >&2; exit 1; }
echo "verify_apk.sh: all checks passed"
