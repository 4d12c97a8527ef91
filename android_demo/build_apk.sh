#!/usr/bin/env bash
# Builds the demo app's APK without the Android SDK or Google's Maven: Debian's aapt2, zipalign and apksigner, and
# from Maven Central D8/R8 (com.android.tools:r8), Kotlin (through the Maven build that check.sh uses), the
# framework's classes and resources (Robolectric's android-all) and the interpreter (org.tensorflow:tensorflow-lite
# AAR: classes and native libraries).
#
#   bash android_demo/build_apk.sh [--assets DIR]              → android_demo/build/fineprune-demo.apk
#   bash android_demo/build_apk.sh --release [--assets DIR]    → android_demo/build/fineprune-demo-release.apk
#
# DIR (default android_demo/app/src/main/assets) must hold what `tflite-fineprune android-assets` writes: an APK
# without models would only show "no assets", so a missing folder stops the build. Versions, minSdk and targetSdk
# come from versions.properties, as in the Gradle build. The app's res/ is compiled (aapt2 compile) and linked with
# the manifest against API 34's framework resources (artifacts.sh: app_resources, link_resources).
#
# Debug (default): debuggable, so `adb shell run-as` can read the app's profiles; dexed by D8; signed with the debug
# key Android Studio also uses (~/.android/debug.keystore, created here with keytool when absent; override with
# ANDROID_DEBUG_KEYSTORE).
# Release (--release): not debuggable; shrunk and optimized by R8 (app/proguard-rules.pro, the manifest's keep rules
# from aapt2, the interpreter AAR's proguard.txt); signed with the key the environment names, never one in the
# repository: FINEPRUNE_RELEASE_KEYSTORE (a keystore file), FINEPRUNE_RELEASE_KEY_ALIAS, and the passwords in
# FINEPRUNE_RELEASE_STORE_PASSWORD and FINEPRUNE_RELEASE_KEY_PASSWORD (apksigner reads them from the environment).
# ABIS (default: all four) picks which native libraries go in. verify_apk.sh checks the result.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
die() { echo "build_apk.sh: $*" >&2; exit 2; }
trap 'echo "build_apk.sh: failed (exit status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

assets="$HERE/app/src/main/assets"
release=false
while [ $# -gt 0 ]; do
  case "$1" in
    --assets) [ $# -ge 2 ] || die "--assets needs a folder"; assets=$(realpath -m "$2"); shift 2 ;;
    --release) release=true; shift ;;
    *) die "unknown argument '$1' (expected: --release, --assets DIR)" ;;
  esac
done
if $release; then
  unset_vars=()
  for var in FINEPRUNE_RELEASE_KEYSTORE FINEPRUNE_RELEASE_KEY_ALIAS FINEPRUNE_RELEASE_STORE_PASSWORD FINEPRUNE_RELEASE_KEY_PASSWORD; do
    [ -n "${!var:-}" ] || unset_vars+=("$var")
  done
  [ ${#unset_vars[@]} -eq 0 ] || die "--release signs with the key the environment names: set ${unset_vars[*]}" \
    "(e.g. a keystore from keytool -genkeypair; never commit it)"
  [ -f "$FINEPRUNE_RELEASE_KEYSTORE" ] || die "FINEPRUNE_RELEASE_KEYSTORE: no keystore at $FINEPRUNE_RELEASE_KEYSTORE"
fi
if [ ! -f "$assets/manifest.json" ] || ! compgen -G "$assets/models/*.tflite" >/dev/null; then
  die "no demo assets in $assets (expected manifest.json and models/*.tflite):" \
      "run \`tflite-fineprune android-assets -o $assets\` first"
fi

# Every tool up front, so a missing one costs seconds, not a half-built APK; one line names them all.
missing=() packages=()
need() { command -v "$1" >/dev/null || { missing+=("$1"); packages+=("$2"); }; }
need java openjdk-17-jdk-headless; need jar openjdk-17-jdk-headless; need keytool openjdk-17-jdk-headless
need mvn maven; need unzip unzip; need zip zip
need aapt2 aapt; need zipalign zipalign; need apksigner apksigner
if [ ${#missing[@]} -gt 0 ]; then
  install=$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd' ')
  die "missing ${missing[*]} (Debian: apt-get install -y $install)"
fi

# shellcheck source=artifacts.sh
source "$HERE/artifacts.sh"
cd "$HERE"
started=$SECONDS
work=build/apk
if $release; then work=build/apk-release; fi
rm -rf "$work" && mkdir -p "$work/dex" "$work/native"
apk=build/fineprune-demo.apk
if $release; then apk=build/fineprune-demo-release.apk; fi
min_sdk=$(version android.minSdk)
abis=${ABIS:-arm64-v8a armeabi-v7a x86 x86_64}

# 1. Resources, then classes: res/ compiled and linked (its R object is compiled with the sources), and the same Maven
# build as check.sh's compile check (same Kotlin, same TFLite classes.jar).
tflite_classes
app_resources
"${MVN[@]}" -pl app -am compile dependency:build-classpath \
  -Dmdep.includeScope=compile -Dmdep.outputFile=target/compile.classpath
# What the app runs: its classes, the core's, and their jars (kotlin-stdlib, kotlinx-serialization, TFLite);
# android-all only stands for the framework the phone provides. Maven's compile classpath also lists the
# system-scoped jars of the Activity tests (Robolectric's androidx.test classes) and what they pull in: only the
# jars named here go into the APK.
program=() framework=""
IFS=: read -r -a classpath <<< "$(cat app/target/compile.classpath)"
for entry in "$HERE/app/target/classes" "${classpath[@]}"; do
  case "$entry" in
    */android-all-*.jar) framework=$entry ;;
    */target/classes)  # a module's classes (app, core): D8 reads jars, not folders
      module=${entry%/target/classes}
      jar --create --no-manifest --file "$work/${module##*/}.jar" -C "$entry" .
      program+=("$work/${module##*/}.jar") ;;
    */kotlin-stdlib-*.jar | */kotlinx-serialization-*.jar | */tensorflow-lite*-classes.jar) program+=("$entry") ;;
    *) ;;  # test-only or compile-time only
  esac
done
[ -n "$framework" ] || die "android-all is not on the app's compile classpath (app/pom.xml)"

# 2. Dex: D8 for the debug build (like a debug build of the Gradle project); R8 for the release build, which keeps
# what the rules name and what they reach, and renames and optimizes the rest. Both desugar for minSdk.
r8_jar="build/r8/r8-$(version r8.version).jar"
fetch_artifact "com.android.tools:r8:$(version r8.version)" build/r8
if $release; then
  aar_rules="$work/tflite-proguard.txt"
  unzip -p "build/tflite/aar/tensorflow-lite-$(version tflite.version).aar" proguard.txt > "$aar_rules"
  # android-all holds android.* but not java.*, which R8 (unlike D8) must see whole: the JDK's classes too.
  jdk_home=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
  java -cp "$r8_jar" com.android.tools.r8.R8 --release --min-api "$min_sdk" --lib "$framework" --lib "$jdk_home" \
    --output "$work/dex" \
    --pg-conf app/proguard-rules.pro --pg-conf build/res/aapt-rules.pro --pg-conf "$aar_rules" \
    --pg-map-output build/fineprune-demo-release-mapping.txt "${program[@]}"
else
  java -cp "$r8_jar" com.android.tools.r8.D8 --min-api "$min_sdk" --lib "$framework" --output "$work/dex" "${program[@]}"
fi

# 3. Manifest and resources: the compiled res/ of step 1 linked again, for this build type (--debug-mode makes the
# debug APK debuggable).
link_flags=()
$release || link_flags+=(--debug-mode)
link_resources "$work/unsigned.apk" "${link_flags[@]}"

# 4. Assets (this aapt2's -0 does not reach -A assets: zip stores .tflite and .png itself), dex files (deflated)
# and the interpreter's native libraries (stored) into the APK.
mkdir -p "$work/stage" && ln -s "$assets" "$work/stage/assets"
(cd "$work/stage" && zip -q -X -r -n .tflite:.png ../unsigned.apk assets)
(cd "$work/dex" && zip -q -X ../unsigned.apk classes*.dex)
aar="build/tflite/aar/tensorflow-lite-$(version tflite.version).aar"
for abi in $abis; do
  unzip -q -o "$aar" "jni/$abi/*.so" -d "$work/native" || die "$aar has no native library for ABI '$abi'"
  mkdir -p "$work/native/lib" && mv "$work/native/jni/$abi" "$work/native/lib/$abi"
done
(cd "$work/native" && zip -q -X -0 -r ../unsigned.apk lib)

# 5. Align (stored .so files to 4 KB pages), then sign: the debug key, or the release key from the environment.
zipalign -p -f 4 "$work/unsigned.apk" "$work/aligned.apk"
if $release; then
  apksigner sign --ks "$FINEPRUNE_RELEASE_KEYSTORE" --ks-key-alias "$FINEPRUNE_RELEASE_KEY_ALIAS" \
    --ks-pass env:FINEPRUNE_RELEASE_STORE_PASSWORD --key-pass env:FINEPRUNE_RELEASE_KEY_PASSWORD \
    --out "$apk.tmp" "$work/aligned.apk"
else
  keystore=${ANDROID_DEBUG_KEYSTORE:-$HOME/.android/debug.keystore}
  if [ ! -f "$keystore" ]; then
    mkdir -p "$(dirname "$keystore")"
    keytool -genkeypair -keystore "$keystore" -storepass android -alias androiddebugkey -keypass android \
      -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" 2>/dev/null
  fi
  apksigner sign --ks "$keystore" --ks-pass pass:android --ks-key-alias androiddebugkey --key-pass pass:android \
    --out "$apk.tmp" "$work/aligned.apk"
fi
mv "$apk.tmp" "$apk"
rm -f "$apk.tmp.idsig"
echo "build_apk.sh: built android_demo/$apk ($(( $(stat -c %s "$apk") / 1024 )) KiB, $($release && echo release || echo debug)," \
  "ABIs: $abis) in $(( SECONDS - started )) s"
