import KeelExamples

/// The mixed load of `keel bench cluster --service kv`: message `index` is a put (even) or a get
/// (odd) of key `keyNumber(of: index)` (spread over all keys), encoded with KeelExamples' client encoding. Every
/// request is encoded once up front, so offering allocates nothing. Responses are not echoes: each
/// is matched to its message through the request id the client gave it (`track`, `take`).
final class KeyValueLoad {
    let keyCount: Int
    let valueBytes: Int
    private let puts: [[UInt8]]
    private let gets: [[UInt8]]
    /// Per session, a ring of (request id, message index) indexed by request id: ids of one client
    /// are consecutive and at most `capacity` are unanswered.
    private let capacity: Int
    private var ids: [Int64]
    private var indices: [Int64]
    private var generations: [Int]
    /// Bumped by each new schedule: responses to an older one's messages are not counted.
    private var generation = 0
    /// Responses that were neither ok nor not-found (or not a response of the store at all).
    private(set) var errors: Int64 = 0
    /// Counted responses by status: ok (puts, gets of a present key) and not found (gets of a key not yet put).
    private(set) var okCount: Int64 = 0
    private(set) var notFoundCount: Int64 = 0

    init(keyCount: Int, valueBytes: Int, sessions: Int, inFlightPerSession: Int) {
        precondition(keyCount > 0 && valueBytes >= 0, "bad key-value load")
        self.keyCount = keyCount
        self.valueBytes = valueBytes
        let value = [UInt8](repeating: 0x5A, count: valueBytes)
        puts = (0..<keyCount).map { KeyValueRequest.put(key: Self.key($0), value: value).encoded() }
        gets = (0..<keyCount).map { KeyValueRequest.get(key: Self.key($0)).encoded() }
        capacity = inFlightPerSession + 1
        ids = Array(repeating: 0, count: sessions * capacity)
        indices = Array(repeating: -1, count: sessions * capacity)
        generations = Array(repeating: 0, count: sessions * capacity)
    }

    func beginSchedule() { generation += 1 }

    /// An 8-byte key: the key's number, little-endian.
    static func key(_ number: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt64(number).littleEndian) { Array($0) }
    }

    /// Fibonacci hashing: the product's high half, so puts (even indices) and gets (odd ones) reach
    /// every key alike (the low bits of `index × odd` keep the index's parity).
    static func keyNumber(of index: Int64, keyCount: Int) -> Int {
        Int(((UInt64(bitPattern: index) &* 0x9E37_79B9_7F4A_7C15) >> 32) % UInt64(keyCount))
    }

    /// What the load sends, for report headers: the kv mix, not a message size.
    static func describe(keyCount: Int, valueBytes: Int) -> String {
        let put = KeyValueRequest.put(key: key(0), value: [UInt8](repeating: 0, count: valueBytes)).encoded().count
        let get = KeyValueRequest.get(key: key(0)).encoded().count
        return "kv requests: 50/50 put (8-byte key, \(valueBytes)-byte value: \(put) B) / get (\(get) B) over \(keyCount) keys"
    }

    /// The largest request (a put), for the client's buffer sizing.
    var requestBytesMax: Int { puts[0].count }

    /// Calls `body` with the bytes of message `index`.
    func withRequest<R>(_ index: Int64, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let key = Self.keyNumber(of: index, keyCount: keyCount)
        let request = index & 1 == 0 ? puts[key] : gets[key]
        return request.withUnsafeBytes(body)
    }

    func track(session: Int, requestID: Int64, index: Int64) {
        let slot = session * capacity + Int(requestID % Int64(capacity))
        ids[slot] = requestID
        indices[slot] = index
        generations[slot] = generation
    }

    /// The message index `requestID` carried (nil: not tracked), after checking the response.
    func take(session: Int, requestID: Int64, response: UnsafeRawBufferPointer) -> Int64? {
        let slot = session * capacity + Int(requestID % Int64(capacity))
        guard ids[slot] == requestID, indices[slot] >= 0, generations[slot] == generation else { return nil }
        let index = indices[slot]
        indices[slot] = -1
        // | status u8 | length u32 | value |: ok (put, get of a present key) or not found (get of a key not yet put).
        let status = response.count >= 5 ? response[0] : 0xFF
        if status != KeyValueResponse.Status.ok.rawValue && status != KeyValueResponse.Status.notFound.rawValue {
            errors += 1
            return nil
        }
        if status == KeyValueResponse.Status.ok.rawValue { okCount += 1 } else { notFoundCount += 1 }
        return index
    }
}
