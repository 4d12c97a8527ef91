// Android Studio build of the demo app. build_apk.sh builds the same app without Gradle, and check.sh compiles
// the same sources with Maven; all three take their versions from versions.properties.
pluginManagement {
    val versions = java.util.Properties().apply {
        java.io.File(settings.settingsDir, "versions.properties").inputStream().use { load(it) }
    }
    fun versionOf(key: String): String = versions.getProperty(key) ?: error("versions.properties has no $key")
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        id("com.android.application") version versionOf("agp.version")
        id("org.jetbrains.kotlin.android") version versionOf("kotlin.version")
        id("org.jetbrains.kotlin.jvm") version versionOf("kotlin.version")
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
