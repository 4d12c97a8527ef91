#!/usr/bin/env bash
# JVM checks of the Android demo, with only a JDK 17 and Maven (artifacts from Maven Central, cached in ~/.m2):
#
#   bash android_demo/check.sh                              compile every source of the app and the core
#                                                           (app against android.* and the TFLite Java API),
#                                                           run the core's JUnit tests
#   bash android_demo/check.sh replay ASSETS RECORDINGS     the same, plus the replay contract tests against
#                                                           `tflite-fineprune android-assets -o ASSETS --record RECORDINGS`
#   bash android_demo/check.sh decode-state STATE_FILE      print a state file as JSON (through the Kotlin codec)
#   bash android_demo/check.sh encode-state IN.json OUT.state   write a state file from that JSON
#
# The APK itself is built by build_apk.sh (from the classes this compiles).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"
# shellcheck source=artifacts.sh
source "$HERE/artifacts.sh"  # MVN (with versions.properties as -D flags), tflite_classes

die() { echo "check.sh: $*" >&2; exit 2; }
command -v mvn >/dev/null || die "mvn is not installed (needs Maven and a JDK 17)"

# Every Kotlin/Java source must be in a folder the Maven build compiles.
check_sources_covered() {
  local stray
  stray=$(find . \( -path ./build -o -name target -o -path ./.gradle \) -prune -o \( -name '*.kt' -o -name '*.java' \) -print \
    | grep -v -E '^\./(core/src/(main|test)/kotlin|app/src/main/java)/' || true)
  [ -z "$stray" ] || die "sources outside the compiled folders: $stray"
}

# The core's classes and runtime classpath, rebuilt when a core source or pom changed.
core_classpath() {
  local cp=build/core.classpath
  if [ ! -s "$cp" ] || [ -n "$(find core/src/main core/pom.xml pom.xml versions.properties -newer "$cp" -print -quit)" ]; then
    mkdir -p build
    "${MVN[@]}" -pl core compile >&2
    "${MVN[@]}" -pl core dependency:build-classpath -Dmdep.outputFile="$HERE/$cp.tmp" -Dmdep.includeScope=runtime >&2
    mv "$cp.tmp" "$cp"
  fi
  echo "$HERE/core/target/classes:$(cat "$cp")"
}

case "${1:-}" in
  decode-state|encode-state)
    [ "$1" = decode-state ] && [ $# -ne 2 ] && die "usage: check.sh decode-state STATE_FILE"
    [ "$1" = encode-state ] && [ $# -ne 3 ] && die "usage: check.sh encode-state IN.json OUT.state"
    # Paths are resolved against the caller's folder.
    args=("$1")
    for path in "${@:2}"; do args+=("$(cd "$OLDPWD" && realpath -m "$path")"); done
    exec java -cp "$(core_classpath)" org.tflitefineprune.core.StateTool "${args[@]}"
    ;;
  replay)
    [ $# -eq 3 ] || die "usage: check.sh replay ASSETS RECORDINGS"
    assets=$(cd "$OLDPWD" && realpath "$2") || die "no asset folder $2"
    recordings=$(cd "$OLDPWD" && realpath "$3") || die "no recordings folder $3"
    [ -f "$assets/manifest.json" ] || die "$assets has no manifest.json (run tflite-fineprune android-assets)"
    check_sources_covered
    tflite_classes
    "${MVN[@]}" test -Dfineprune.assets="$assets" -Dfineprune.recordings="$recordings"
    ;;
  "")
    check_sources_covered
    tflite_classes
    "${MVN[@]}" test
    ;;
  *)
    die "unknown command '$1' (expected nothing, replay, decode-state or encode-state)"
    ;;
esac
echo "android_demo: every app and core source compiled; core tests passed"
