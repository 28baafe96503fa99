/// A count with its noun in the matching number, for messages: `counted(1, "record")` is
/// "1 record", `counted(3, "entry", "entries")` is "3 entries".
/// - Parameter plural: the plural when it is not the singular with an "s".
public func counted(_ count: Int, _ singular: String, _ plural: String? = nil) -> String {
    "\(count) \(count == 1 ? singular : plural ?? singular + "s")"
}
