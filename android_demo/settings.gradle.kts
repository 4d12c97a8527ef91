// Android Studio build of the demo app. (check.sh compiles the same sources with Maven; see pom.xml.)
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "tflite-fineprune-demo"
include(":app", ":core")
