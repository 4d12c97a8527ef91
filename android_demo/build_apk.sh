#!/usr/bin/env bash
# Builds the demo app's APK without the Android SDK or Google's Maven: Debian's aapt2, zipalign and apksigner,
# Debian's framework-res.apk, and from Maven Central D8 (com.android.tools:r8), Kotlin (through the Maven build
# that check.sh uses) and the interpreter (org.tensorflow:tensorflow-lite AAR: classes and native libraries).
#
#   bash android_demo/build_apk.sh [--assets DIR]      → android_demo/build/fineprune-demo.apk
#
# DIR (default android_demo/app/src/main/assets) must hold what `tflite-fineprune android-assets` writes: an APK
# without models would only show "no assets", so a missing folder stops the build. Versions, minSdk and targetSdk
# come from versions.properties, as in the Gradle build. The APK is a debug build (debuggable, so `adb shell run-as`
# can read the app's profiles), signed with the debug key Android Studio also uses (~/.android/debug.keystore,
# created here with keytool when absent; override with ANDROID_DEBUG_KEYSTORE). ABIS (default: all four) picks
# which native libraries go in. verify_apk.sh checks the result.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
die() { echo "build_apk.sh: $*" >&2; exit 2; }
trap 'echo "build_apk.sh: failed (exit status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

assets="$HERE/app/src/main/assets"
while [ $# -gt 0 ]; do
  case "$1" in
    --assets) [ $# -ge 2 ] || die "--assets needs a folder"; assets=$(realpath -m "$2"); shift 2 ;;
    *) die "unknown argument '$1' (expected: --assets DIR)" ;;
  esac
done
if [ ! -f "$assets/manifest.json" ] || ! compgen -G "$assets/models/*.tflite" >/dev/null; then
  die "no demo assets in $assets (expected manifest.json and models/*.tflite):" \
      "run \`tflite-fineprune android-assets -o $assets\` first"
fi

# Every tool up front, so a missing one costs seconds, not a half-built APK; one line names them all.
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk
missing=() packages=()
need() { command -v "$1" >/dev/null || { missing+=("$1"); packages+=("$2"); }; }
need java openjdk-17-jdk-headless; need jar openjdk-17-jdk-headless; need keytool openjdk-17-jdk-headless
need mvn maven; need unzip unzip; need zip zip
need aapt2 aapt; need zipalign zipalign; need apksigner apksigner
[ -f "$FRAMEWORK_RES" ] || { missing+=("$FRAMEWORK_RES"); packages+=(android-framework-res); }
if [ ${#missing[@]} -gt 0 ]; then
  install=$(printf '%s\n' "${packages[@]}" | sort -u | paste -sd' ')
  die "missing ${missing[*]} (Debian: apt-get install -y $install)"
fi

# shellcheck source=artifacts.sh
source "$HERE/artifacts.sh"
cd "$HERE"
started=$SECONDS
work=build/apk
rm -rf "$work" && mkdir -p "$work/dex" "$work/native"
apk=build/fineprune-demo.apk
min_sdk=$(version android.minSdk)
abis=${ABIS:-arm64-v8a armeabi-v7a x86 x86_64}

# 1. Classes: the same Maven build as check.sh's compile check (same Kotlin, same TFLite classes.jar).
tflite_classes
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

# 2. Dex: D8 (debug mode, like a debug build of the Gradle project), desugared for minSdk.
r8_jar="build/r8/r8-$(version r8.version).jar"
fetch_artifact "com.android.tools:r8:$(version r8.version)" build/r8
java -cp "$r8_jar" com.android.tools.r8.D8 --min-api "$min_sdk" --lib "$framework" --output "$work/dex" "${program[@]}"

# 3. Manifest: aapt2 link against the framework's resources (the app has none of its own). The source manifest has
# no package (Gradle's namespace supplies it) and native libraries are stored uncompressed and page-aligned, not
# extracted at install, as the Android Gradle Plugin does for minSdk >= 23.
sed -e "0,/<manifest /s//<manifest package=\"$(version app.id)\" /" \
    -e '0,/<application/s//<application android:extractNativeLibs="false"/' \
    app/src/main/AndroidManifest.xml > "$work/AndroidManifest.xml"
aapt2 link -o "$work/unsigned.apk" --manifest "$work/AndroidManifest.xml" -I "$FRAMEWORK_RES" \
  --min-sdk-version "$min_sdk" --target-sdk-version "$(version android.targetSdk)" \
  --version-code "$(version app.versionCode)" --version-name "$(version app.versionName)" \
  --debug-mode

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

# 5. Align (stored .so files to 4 KB pages), then sign with the debug key.
keystore=${ANDROID_DEBUG_KEYSTORE:-$HOME/.android/debug.keystore}
if [ ! -f "$keystore" ]; then
  mkdir -p "$(dirname "$keystore")"
  keytool -genkeypair -keystore "$keystore" -storepass android -alias androiddebugkey -keypass android \
    -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" 2>/dev/null
fi
zipalign -p -f 4 "$work/unsigned.apk" "$work/aligned.apk"
apksigner sign --ks "$keystore" --ks-pass pass:android --ks-key-alias androiddebugkey --key-pass pass:android \
  --out "$apk.tmp" "$work/aligned.apk"
mv "$apk.tmp" "$apk"
rm -f "$apk.tmp.idsig"
echo "build_apk.sh: built android_demo/$apk ($(( $(stat -c %s "$apk") / 1024 )) KiB, ABIs: $abis)" \
  "in $(( SECONDS - started )) s"
