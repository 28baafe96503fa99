// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Tutela",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tutela", targets: ["tutela"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .target(name: "TutelaCore"),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "KeyManagement",
            dependencies: [
                "TutelaCore",
                "COpenSSL",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Policy",
            dependencies: [
                "TutelaCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "Masking",
            dependencies: [
                "TutelaCore",
                "KeyManagement",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Audit",
            dependencies: [
                "TutelaCore",
                "SQLiteSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "SQLiteSupport",
            dependencies: [
                "TutelaCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "Store",
            dependencies: [
                "TutelaCore",
                "KeyManagement",
                "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "Governance",
            dependencies: [
                "TutelaCore",
                "KeyManagement",
                "Policy",
                "Masking",
                "Store",
                "Audit",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "TutelaCore",
                "KeyManagement",
                "Policy",
                "Store",
                "Audit",
                "Governance",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("openapi.yaml")]
        ),
        .executableTarget(
            name: "tutela",
            dependencies: [
                "TutelaCore",
                "KeyManagement",
                "Policy",
                "Store",
                "Governance",
                "Gateway",
                "Masking",
                "Audit",
                "SQLiteSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "TutelaTestSupport",
            dependencies: [
                "TutelaCore",
                "KeyManagement",
                "Policy",
                "Store",
                "Governance",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/TutelaTestSupport"
        ),
        .testTarget(
            name: "TutelaTests",
            dependencies: [
                "TutelaCore",
                "KeyManagement",
                "Policy",
                "Masking",
                "Store",
                "Audit",
                "Governance",
                "Gateway",
                "TutelaTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: ["Vectors"]
        ),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ])
    target.swiftSettings = settings
}
