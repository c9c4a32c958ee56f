import CKernels
import Foundation

/// HMAC-SHA256 (RFC 2104); the work is in C (`tf_hmac_sha256`, on the same compression as `SHA256`).
public enum HMACSHA256 {
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                tf_hmac_sha256(k.baseAddress, k.count, m.baseAddress, m.count, &out)
            }
        }
        return out
    }
}

/// PBKDF2 with HMAC-SHA256 as its pseudo-random function (RFC 8018 §5.2).
public enum PBKDF2 {
    public static func sha256(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        precondition(iterations >= 1 && iterations <= Int(UInt32.max) && length >= 1, "PBKDF2 needs iterations ≥ 1 and length ≥ 1")
        var out = [UInt8](repeating: 0, count: length)
        password.withUnsafeBufferPointer { p in
            salt.withUnsafeBufferPointer { s in
                tf_pbkdf2_hmac_sha256(p.baseAddress, p.count, s.baseAddress, s.count, UInt32(iterations), &out, length)
            }
        }
        return out
    }
}

/// Stored password hashes: `pbkdf2-sha256$ITERATIONS$SALT$HASH` (salt and hash base64), a
/// 16-byte random salt per password and 600,000 iterations (OWASP's figure for PBKDF2-HMAC-SHA256),
/// so a stolen user database costs an attacker ~0.3 s of CPU per guess and password.
public enum PasswordHash {
    public static let defaultIterations = 600_000
    static let scheme = "pbkdf2-sha256"

    public static func make(_ password: String, iterations: Int = defaultIterations) -> String {
        let salt = randomBytes(16)
        let dk = PBKDF2.sha256(password: Array(password.utf8), salt: salt, iterations: iterations, length: 32)
        return [scheme, String(iterations), Data(salt).base64EncodedString(), Data(dk).base64EncodedString()].joined(separator: "$")
    }

    /// Whether `password` matches `stored` (compared in constant time); false for a malformed entry.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == scheme, let n = Int(parts[1]), n >= 1, n <= Int(UInt32.max),
              let salt = Data(base64Encoded: String(parts[2])), let want = Data(base64Encoded: String(parts[3])), !want.isEmpty
        else { return false }
        let got = PBKDF2.sha256(password: Array(password.utf8), salt: [UInt8](salt), iterations: n, length: want.count)
        return constantTimeEqual(got, [UInt8](want))
    }

    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// Bytes from the system's cryptographic generator (getrandom on Linux).
    public static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    /// A random token as URL-safe base64 without padding (session cookies, API keys).
    public static func randomToken(bytes: Int = 32) -> String {
        Data(randomBytes(bytes)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
