extension UInt8 {
    /// Whether the byte is one of the ASCII digits 0 to 9, the only digits that the formats
    /// Tutela reads (JSON, RFC 3339 times, numbers in files) write.
    var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}
