#!/usr/bin/env bash
# JVM checks of the Android demo, with a JDK 17, Maven (artifacts from Maven Central, cached in ~/.m2) and aapt2 (the
# app's res/, compiled and linked into the R object and the resources Robolectric loads):
#
#   bash android_demo/check.sh                              compile every source of the app and the core
#                                                           (app against android.* and the TFLite Java API),
#                                                           and the app's tests; run the core's JUnit tests
#   bash android_demo/check.sh replay ASSETS RECORDINGS     the same, plus the replay contract tests against
#                                                           `tflite-fineprune android-assets -o ASSETS --record RECORDINGS`
#                                                           and the app's Robolectric tests of MainActivity on
#                                                           ASSETS, their model calls run by LiteRT in Python
#                                                           ($FINEPRUNE_PYTHON, default: the repository's .venv)
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
command -v aapt2 >/dev/null || die "aapt2 is not installed (the app's resources; Debian package: aapt)"

# androidx.test's monitor and idling-resource classes, which Robolectric loads: Maven Central serves them as
# AARs, so their classes.jar is extracted once (versions: versions.properties).
androidx_classes() {
  local dir="$HERE/build/androidx" coordinate artifact version
  for coordinate in "androidx.test:monitor:$(version androidx.monitor.version)" \
                    "androidx.test.espresso:espresso-idling-resource:$(version androidx.idling.version)"; do
    artifact=$(cut -d: -f2 <<< "$coordinate")
    version=$(cut -d: -f3 <<< "$coordinate")
    [ -s "$dir/$artifact-classes.jar" ] && continue
    fetch_artifact "$coordinate:aar" "$dir/aar"
    unzip -p "$dir/aar/$artifact-$version.aar" classes.jar > "$dir/$artifact-classes.jar.tmp"
    mv "$dir/$artifact-classes.jar.tmp" "$dir/$artifact-classes.jar"
  done
}

# The Python that runs the Activity tests' model calls (app/src/test/python/signature_bridge.py).
bridge_python() {
  local python="${FINEPRUNE_PYTHON:-$HERE/../.venv/bin/python}"
  [ -x "$python" ] || die "no Python at $python for the Activity tests (set FINEPRUNE_PYTHON to one with ai-edge-litert)"
  "$python" -c "import ai_edge_litert.interpreter" 2>/dev/null \
    || die "$python cannot import ai_edge_litert (pip install ai-edge-litert)"
  echo "$python"
}

# Every Kotlin/Java source must be in a folder the Maven build compiles.
check_sources_covered() {
  local stray
  stray=$(find . \( -path ./build -o -name target -o -path ./.gradle \) -prune -o \( -name '*.kt' -o -name '*.java' \) -print \
    | grep -v -E '^\./(core/src/(main|test)/kotlin|app/src/main/java|app/src/test/kotlin)/' || true)
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
    python=$(bridge_python)
    check_sources_covered
    tflite_classes
    androidx_classes
    app_resources
    # The replay tests skip without the folders: make sure the properties reached them (a fresh report).
    report=core/target/surefire-reports/TEST-org.tflitefineprune.core.ReplayTest.xml
    rm -f "$report" app/target/surefire-reports/TEST-*.xml
    "${MVN[@]}" test -Dfineprune.assets="$assets" -Dfineprune.recordings="$recordings" -Dfineprune.python="$python"
    [ -f "$report" ] && grep -q '<testsuite [^>]*skipped="0"' "$report" \
      || die "replay tests were skipped or did not run ($report)"
    # And none of the Activity tests: every class ran, none skipped.
    for class in MainActivityTest MainActivityPlatformTest MicrophoneTest; do
      report=app/target/surefire-reports/TEST-org.tflitefineprune.demo.$class.xml
      [ -f "$report" ] && grep -q '<testsuite [^>]*skipped="0"' "$report" || die "$class was skipped or did not run ($report)"
    done
    echo "android_demo: replay and MainActivity (Robolectric) tests passed"
    ;;
  "")
    check_sources_covered
    tflite_classes
    androidx_classes
    app_resources
    # The app's tests need generated assets (replay mode): here they are compiled, not run.
    "${MVN[@]}" test -Dtest='org.tflitefineprune.core.**' -Dsurefire.failIfNoSpecifiedTests=false
    ;;
  *)
    die "unknown command '$1' (expected nothing, replay, decode-state or encode-state)"
    ;;
esac
echo "android_demo: every app and core source compiled; core tests passed"
