/// The consensus agent's live connections: found by id, walked in the order they were
/// registered. A dictionary alone would be walked in hash order, which differs between
/// processes; the order in which connections are drained decides the order of client requests
/// in the log, so a replayed simulation seed must see the same one.
struct ConnectionTable {
    private var byID: [Int32: PeerConnection] = [:]
    /// Every live connection, oldest first.
    private(set) var values: [PeerConnection] = []

    init() {
        values.reserveCapacity(64)
    }

    var count: Int { values.count }

    subscript(id: Int32) -> PeerConnection? {
        get { byID[id] }
        set {
            if let old = byID[id] { values.removeAll { $0 === old } }
            byID[id] = newValue
            if let newValue { values.append(newValue) }
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: Int32) -> PeerConnection? {
        guard let old = byID.removeValue(forKey: id) else { return nil }
        values.removeAll { $0 === old }
        return old
    }
}
