import TutelaCore

extension TutelaError.Code {
    /// A cryptographic library call failed for a reason other than authentication.
    public static let crypto = Self("crypto_error")
    /// Authenticated decryption failed: the data was altered or the key is wrong.
    public static let authenticationFailed = Self("authentication_failed")
    /// A ciphertext was found under another record or field than the one it was made for.
    public static let ciphertextMisplaced = Self("ciphertext_misplaced")
    /// A stored ciphertext failed its integrity check.
    public static let ciphertextTampered = Self("ciphertext_tampered")
    /// The master key is missing or unreadable.
    public static let masterKeyMissing = Self("master_key_missing")
    /// The master key does not open this keyring.
    public static let masterKeyWrong = Self("master_key_wrong")
    /// The keyring file is damaged or was altered.
    public static let keyringCorrupted = Self("keyring_corrupted")
    /// The key version needed is disabled.
    public static let keyDisabled = Self("key_disabled")
    /// The key version needed was destroyed.
    public static let keyDestroyed = Self("key_destroyed")
    /// The data subject's data key was destroyed: their data is erased.
    public static let subjectErased = Self("subject_erased")
}
