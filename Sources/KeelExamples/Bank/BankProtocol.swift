import KeelCore

/// The bank's requests (little-endian; amounts are whole cents, accounts and holds are ids the
/// client chooses):
///
/// ```
/// open     | 1 | account i64 |
/// deposit  | 2 | account i64 | amount i64 |
/// withdraw | 3 | account i64 | amount i64 |                 refused if it would overdraw
/// transfer | 4 | from i64 | to i64 | amount i64 |           atomic: both or neither
/// hold     | 5 | hold i64 | account i64 | amount i64 | duration ns i64 |
///                reserves money that expires back to the account after `duration` (a timer)
/// capture  | 6 | hold i64 | to i64 |                         pays a live hold to another account
/// release  | 7 | hold i64 |                                  gives a live hold back early
/// balance  | 8 | account i64 |                              → (balance, held)
/// total    | 9 |                                            → (money in all accounts, accounts)
/// ```
public enum BankRequest: Equatable, Sendable {
    case open(account: Int64)
    case deposit(account: Int64, amount: Int64)
    case withdraw(account: Int64, amount: Int64)
    case transfer(from: Int64, to: Int64, amount: Int64)
    case hold(hold: Int64, account: Int64, amount: Int64, durationNanos: Int64)
    case capture(hold: Int64, to: Int64)
    case release(hold: Int64)
    case balance(account: Int64)
    case total

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        func put(_ op: UInt8, _ fields: Int64...) {
            bytes.append(op)
            for field in fields { bytes.appendLittleEndian(field) }
        }
        switch self {
        case .open(let account): put(1, account)
        case .deposit(let account, let amount): put(2, account, amount)
        case .withdraw(let account, let amount): put(3, account, amount)
        case .transfer(let from, let to, let amount): put(4, from, to, amount)
        case .hold(let hold, let account, let amount, let duration): put(5, hold, account, amount, duration)
        case .capture(let hold, let to): put(6, hold, to)
        case .release(let hold): put(7, hold)
        case .balance(let account): put(8, account)
        case .total: put(9)
        }
        return bytes
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(MalformedMessageError) -> BankRequest {
        var reader = ByteCursor(bytes)
        let op = try reader.uint8()
        let fieldCounts: [UInt8: Int] = [1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 6: 2, 7: 1, 8: 1, 9: 0]
        guard let count = fieldCounts[op] else { throw MalformedMessageError("unknown bank operation \(op)") }
        guard bytes.count == 1 + 8 * count else {
            throw MalformedMessageError("bank operation \(op) takes \(1 + 8 * count) bytes, not \(bytes.count)")
        }
        var f: [Int64] = []
        for _ in 0..<count { f.append(try reader.int64()) }
        switch op {
        case 1: return .open(account: f[0])
        case 2: return .deposit(account: f[0], amount: f[1])
        case 3: return .withdraw(account: f[0], amount: f[1])
        case 4: return .transfer(from: f[0], to: f[1], amount: f[2])
        case 5: return .hold(hold: f[0], account: f[1], amount: f[2], durationNanos: f[3])
        case 6: return .capture(hold: f[0], to: f[1])
        case 7: return .release(hold: f[0])
        case 8: return .balance(account: f[0])
        default: return .total
        }
    }
}

/// The bank's answer: `| status u8 | first i64 | second i64 |` (balance and held for `balance`,
/// money and accounts for `total`, the account's new balance otherwise; zeros on refusal).
public struct BankResponse: Equatable, Sendable {
    public enum Status: UInt8, Sendable {
        case ok = 0
        case noSuchAccount = 1
        /// The account's available money (balance minus holds) does not cover the amount.
        case insufficientFunds = 2
        case accountExists = 3
        /// The request bytes were malformed; nothing changed.
        case malformed = 4
        case noSuchHold = 5
        case holdExists = 6
        /// An amount or duration that is not positive, or a transfer to the same account.
        case invalidAmount = 7
    }

    public var status: Status
    public var first: Int64
    public var second: Int64

    public init(status: Status, first: Int64 = 0, second: Int64 = 0) {
        self.status = status
        self.first = first
        self.second = second
    }

    public static let encodedBytes = 17

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = [status.rawValue]
        bytes.appendLittleEndian(first)
        bytes.appendLittleEndian(second)
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(MalformedMessageError) -> BankResponse {
        guard bytes.count == encodedBytes, let status = Status(rawValue: bytes[0]) else {
            throw MalformedMessageError("not a bank response (\(bytes.count) bytes)")
        }
        return bytes.withUnsafeBytes {
            BankResponse(status: status, first: Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 1, as: Int64.self)),
                         second: Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 9, as: Int64.self)))
        }
    }
}
