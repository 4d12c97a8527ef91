# Sourced by check.sh and build_apk.sh: versions.properties as shell values and Maven flags, and the
# Maven Central artifacts both scripts need.
ANDROID_DEMO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS_FILE="$ANDROID_DEMO/versions.properties"

# version KEY: the value of KEY in versions.properties (exits naming the key when it is absent).
version() {
  local value
  value=$(sed -n "s/^${1//./\\.}=//p" "$VERSIONS_FILE")
  [ -n "$value" ] || { echo "versions.properties has no $1" >&2; exit 2; }
  echo "$value"
}

# Maven, quiet, with every version as a -D property (the poms use ${kotlin.version} etc.).
MVN=(mvn -B -q -Dstyle.color=never)
while IFS= read -r line; do
  MVN+=("-D$line")
done < <(grep -E '^[A-Za-z][A-Za-z0-9.]*=' "$VERSIONS_FILE")

# fetch_artifact GROUP:ARTIFACT:VERSION[:TYPE] DIR: copies one artifact from Maven Central (cached in ~/.m2) into DIR.
fetch_artifact() {
  local coords=$1 dir=$2
  local file
  file=$(echo "$coords" | awk -F: '{ printf "%s-%s.%s", $2, $3, ($4 == "" ? "jar" : $4) }')
  [ -s "$dir/$file" ] && return
  mkdir -p "$dir"
  "${MVN[@]}" -N -f "$ANDROID_DEMO/pom.xml" dependency:copy -Dartifact="$coords" -DoutputDirectory="$dir" >&2
}

# tflite_classes: org.tensorflow.lite.* for compiling and dexing. Maven cannot put an AAR on a classpath, so the
# classes.jar inside the tensorflow-lite and tensorflow-lite-api AARs is extracted once into build/tflite/.
tflite_classes() {
  local dir="$ANDROID_DEMO/build/tflite" tflite_version artifact
  tflite_version=$(version tflite.version)
  for artifact in tensorflow-lite tensorflow-lite-api; do
    [ -s "$dir/$artifact-classes.jar" ] && [ -s "$dir/aar/$artifact-$tflite_version.aar" ] && continue
    fetch_artifact "org.tensorflow:$artifact:$tflite_version:aar" "$dir/aar"
    unzip -p "$dir/aar/$artifact-$tflite_version.aar" classes.jar > "$dir/$artifact-classes.jar.tmp"
    mv "$dir/$artifact-classes.jar.tmp" "$dir/$artifact-classes.jar"
  done
}
