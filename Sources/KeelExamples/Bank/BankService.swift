import KeelCore
import KeelService

/// Bank accounts (issue 8 §5, the seeds' running example): open, deposit, withdraw (refused if it
/// would overdraw), atomic transfer, and holds — money reserved for a while that a timer gives back
/// unless it is captured or released first. Money only enters by deposit and leaves by withdrawal:
/// transfers, holds, captures and expiries move it, so the total is conserved.
public struct BankService: ClusteredService, StateDigestible {
    public struct Account: Equatable, Sendable {
        /// Money in the account, holds included.
        public var balance: Int64
        /// Money reserved by live holds (not available to withdraw or transfer).
        public var held: Int64
    }

    public struct Hold: Equatable, Sendable {
        public var account: Int64
        public var amount: Int64
        public var expires: ClusterTime
    }

    public private(set) var accounts: [Int64: Account] = [:]
    public private(set) var holds: [Int64: Hold] = [:]
    /// Holds that expired (their timer fired).
    public private(set) var holdsExpired: Int64 = 0
    var cluster: Cluster?

    public init() {}

    /// Money in all accounts.
    public var totalMoney: Int64 { accounts.values.reduce(0) { $0 &+ $1.balance } }

    public mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws {
        self.cluster = cluster
        guard let snapshot else { return }
        guard snapshot.serviceVersion == snapshotVersion else {
            throw SnapshotFormatError.unsupportedVersion(found: snapshot.serviceVersion, supported: snapshotVersion)
        }
        holdsExpired = try snapshot.readInt64()
        for _ in 0..<(try snapshot.readInt64()) {
            let id = try snapshot.readInt64()
            accounts[id] = Account(balance: try snapshot.readInt64(), held: try snapshot.readInt64())
        }
        for _ in 0..<(try snapshot.readInt64()) {
            let id = try snapshot.readInt64()
            holds[id] = Hold(account: try snapshot.readInt64(), amount: try snapshot.readInt64(), expires: ClusterTime(rawValue: try snapshot.readInt64()))
        }
    }

    public mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {}
    public mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {}

    public mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        let response: BankResponse
        do {
            response = apply(try BankRequest.decode(message), at: timestamp)
        } catch {
            response = BankResponse(status: .malformed)
        }
        session.offer(response.encoded())
    }

    /// Applies one decoded request at cluster time `now`.
    public mutating func apply(_ request: BankRequest, at now: ClusterTime) -> BankResponse {
        switch request {
        case .open(let id):
            guard accounts[id] == nil else { return BankResponse(status: .accountExists) }
            accounts[id] = Account(balance: 0, held: 0)
            return BankResponse(status: .ok)
        case .deposit(let id, let amount):
            guard amount > 0 else { return BankResponse(status: .invalidAmount) }
            guard let account = accounts[id] else { return BankResponse(status: .noSuchAccount) }
            let (balance, overflow) = account.balance.addingReportingOverflow(amount)
            guard !overflow else { return BankResponse(status: .invalidAmount) }
            accounts[id]!.balance = balance
            return BankResponse(status: .ok, first: balance)
        case .withdraw(let id, let amount):
            guard amount > 0 else { return BankResponse(status: .invalidAmount) }
            guard let account = accounts[id] else { return BankResponse(status: .noSuchAccount) }
            guard account.balance - account.held >= amount else { return BankResponse(status: .insufficientFunds) }
            accounts[id]!.balance -= amount
            return BankResponse(status: .ok, first: accounts[id]!.balance)
        case .transfer(let from, let to, let amount):
            guard amount > 0, from != to else { return BankResponse(status: .invalidAmount) }
            guard let source = accounts[from], accounts[to] != nil else { return BankResponse(status: .noSuchAccount) }
            guard source.balance - source.held >= amount else { return BankResponse(status: .insufficientFunds) }
            guard accounts[to]!.balance <= Int64.max - amount else { return BankResponse(status: .invalidAmount) }
            accounts[from]!.balance -= amount
            accounts[to]!.balance += amount
            return BankResponse(status: .ok, first: accounts[from]!.balance)
        case .hold(let holdID, let id, let amount, let duration):
            return placeHold(holdID, account: id, amount: amount, durationNanos: duration, now: now)
        case .capture(let holdID, let to):
            guard let hold = holds[holdID] else { return BankResponse(status: .noSuchHold) }
            guard let target = accounts[to] else { return BankResponse(status: .noSuchAccount) }
            guard hold.account == to || target.balance <= Int64.max - hold.amount else { return BankResponse(status: .invalidAmount) }
            endHold(holdID)
            accounts[hold.account]!.balance -= hold.amount
            accounts[to]!.balance += hold.amount
            return BankResponse(status: .ok, first: accounts[to]!.balance)
        case .release(let holdID):
            guard holds[holdID] != nil else { return BankResponse(status: .noSuchHold) }
            endHold(holdID)
            return BankResponse(status: .ok)
        case .balance(let id):
            guard let account = accounts[id] else { return BankResponse(status: .noSuchAccount) }
            return BankResponse(status: .ok, first: account.balance, second: account.held)
        case .total:
            return BankResponse(status: .ok, first: totalMoney, second: Int64(accounts.count))
        }
    }

    private mutating func placeHold(_ holdID: Int64, account id: Int64, amount: Int64, durationNanos: Int64, now: ClusterTime) -> BankResponse {
        guard amount > 0, durationNanos > 0 else { return BankResponse(status: .invalidAmount) }
        guard holds[holdID] == nil else { return BankResponse(status: .holdExists) }
        guard let account = accounts[id] else { return BankResponse(status: .noSuchAccount) }
        guard account.balance - account.held >= amount else { return BankResponse(status: .insufficientFunds) }
        let expires = ClusterTime(rawValue: now.rawValue &+ durationNanos)
        holds[holdID] = Hold(account: id, amount: amount, expires: expires)
        accounts[id]!.held += amount
        // The hold's id is its timer's correlation id: the service owns all of its timer ids.
        cluster?.scheduleTimer(correlationId: holdID, deadline: expires)
        return BankResponse(status: .ok, first: account.balance - account.held - amount)
    }

    /// Removes a live hold (its money is no longer reserved) and its timer.
    private mutating func endHold(_ holdID: Int64) {
        guard let hold = holds.removeValue(forKey: holdID) else { return }
        accounts[hold.account]!.held -= hold.amount
        cluster?.cancelTimer(correlationId: holdID)
    }

    /// A hold's timer: it expired without being captured or released; its money is free again.
    public mutating func onTimerEvent(correlationId: Int64, timestamp: ClusterTime) {
        guard let hold = holds.removeValue(forKey: correlationId) else { return }
        accounts[hold.account]!.held -= hold.amount
        holdsExpired += 1
    }

    public mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {
        try writer.write(holdsExpired)
        try writer.write(Int64(accounts.count))
        // In id order, not the dictionaries' (a per-process hash order): equal states, equal snapshots.
        for (id, account) in accounts.sorted(by: { $0.key < $1.key }) {
            try writer.write(id)
            try writer.write(account.balance)
            try writer.write(account.held)
        }
        try writer.write(Int64(holds.count))
        for (id, hold) in holds.sorted(by: { $0.key < $1.key }) {
            try writer.write(id)
            try writer.write(hold.account)
            try writer.write(hold.amount)
            try writer.write(hold.expires.rawValue)
        }
    }

    public func stateDigest() -> StateDigest {
        var digest = StateDigest()
        digest.add(-1, holdsExpired)
        for (id, account) in accounts { digest.add(id, account.balance, account.held) }
        for (id, hold) in holds {
            var entry = StateDigest.Entry()
            for field in [-2, id, hold.account, hold.amount, hold.expires.rawValue] { entry.combine(field) }
            digest.add(entry)
        }
        return digest
    }
}
