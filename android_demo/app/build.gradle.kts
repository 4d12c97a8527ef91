plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

// Versions, SDK levels and the interpreter: versions.properties, shared with build_apk.sh and check.sh.
val versions = java.util.Properties().apply { rootProject.file("versions.properties").inputStream().use { load(it) } }
fun versionOf(key: String): String = versions.getProperty(key) ?: error("versions.properties has no $key")

android {
    namespace = "org.tflitefineprune.demo"
    compileSdk = versionOf("android.compileSdk").toInt()

    defaultConfig {
        applicationId = versionOf("app.id")
        minSdk = versionOf("android.minSdk").toInt()
        targetSdk = versionOf("android.targetSdk").toInt()
        versionCode = versionOf("app.versionCode").toInt()
        versionName = versionOf("app.versionName")
    }

    // The release build: the key comes from the environment, as for build_apk.sh --release (never committed).
    val releaseKeystore = System.getenv("FINEPRUNE_RELEASE_KEYSTORE")
    signingConfigs {
        if (releaseKeystore != null) {
            create("release") {
                storeFile = file(releaseKeystore)
                storePassword = System.getenv("FINEPRUNE_RELEASE_STORE_PASSWORD")
                keyAlias = System.getenv("FINEPRUNE_RELEASE_KEY_ALIAS")
                keyPassword = System.getenv("FINEPRUNE_RELEASE_KEY_PASSWORD")
            }
        }
    }
    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
            if (releaseKeystore != null) signingConfig = signingConfigs.getByName("release")
        }
    }

    // Models are mapped by the interpreter after being copied out of the APK; keep them uncompressed anyway
    // (build_apk.sh stores them too).
    androidResources {
        noCompress += "tflite"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    // The Activity tests need the app's resources (Robolectric), the generated assets and a Python with
    // ai-edge-litert that answers the model calls (check.sh replay passes the same three).
    testOptions {
        unitTests.isIncludeAndroidResources = true
        unitTests.all {
            it.systemProperty("fineprune.assets", project.findProperty("fineprune.assets") ?: file("src/main/assets").path)
            it.systemProperty("fineprune.python", project.findProperty("fineprune.python") ?: rootProject.file("../.venv/bin/python").path)
            it.jvmArgs("--add-opens", "java.base/java.io=ALL-UNNAMED")
        }
    }
}

dependencies {
    implementation(project(":core"))
    // The same interpreter as build_apk.sh's APK (LiteRT, com.google.ai.edge.litert, is not on Maven Central):
    // see docs/android.md, "Which interpreter".
    implementation("org.tensorflow:tensorflow-lite:${versionOf("tflite.version")}")
    // The Activity tests (app/src/test): Robolectric on the JVM, the manifest parsed with kotlinx-serialization.
    testImplementation("junit:junit:${versionOf("junit.version")}")
    testImplementation("org.robolectric:robolectric:${versionOf("robolectric.version")}")
    testImplementation("org.jetbrains.kotlinx:kotlinx-serialization-json:${versionOf("serialization.version")}")
}
