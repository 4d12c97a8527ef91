plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.tflitefineprune.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.tflitefineprune.demo"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
    }

    // Models are mapped by LiteRT after being copied out of the APK; keep them uncompressed anyway.
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
}

dependencies {
    implementation(project(":core"))
    implementation("com.google.ai.edge.litert:litert:1.0.1")
}
