// The portable core: plain Kotlin/JVM, no Android imports (unit-tested on the JVM by check.sh).
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("org.jetbrains.kotlin.jvm")
}

val versions = java.util.Properties().apply { rootProject.file("versions.properties").inputStream().use { load(it) } }
fun versionOf(key: String): String = versions.getProperty(key) ?: error("versions.properties has no $key")

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    implementation("org.jetbrains.kotlinx:kotlinx-serialization-json:${versionOf("serialization.version")}")
    testImplementation("junit:junit:${versionOf("junit.version")}")
}
