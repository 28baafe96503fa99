extension Unicode.Scalar {
    /// Whether this is a control character: C0 (below U+0020), DEL or C1 (U+0080 to U+009F).
    ///
    /// Such a character in text that is stored, audited or printed could forge or hide lines, or
    /// make a terminal act on an escape sequence.
    public var isControlCharacter: Bool {
        value < 0x20 || (0x7F...0x9F).contains(value)
    }
}
