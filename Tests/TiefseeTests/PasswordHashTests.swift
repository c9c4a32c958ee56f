import Foundation
import XCTest
@testable import Tiefsee

/// HMAC-SHA256 against RFC 4231's test cases, PBKDF2-HMAC-SHA256 against RFC 7914 §11 and the
/// widely published RFC 6070-style vectors for SHA-256, and the stored password format.
final class PasswordHashTests: XCTestCase {
    func bytes(_ hex: String) -> [UInt8] {
        var out = [UInt8](), chars = Array(hex.utf8)
        var i = 0
        while i + 1 < chars.count { out.append(UInt8(String(decoding: chars[i...i + 1], as: UTF8.self), radix: 16)!); i += 2 }
        return out
    }

    func testHMACSHA256RFC4231() {
        let cases: [([UInt8], [UInt8], String)] = [
            ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
             "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            // Case 6 and 7: a key longer than the block is hashed first; case 7's data spans blocks.
            ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            ([UInt8](repeating: 0xaa, count: 131),
             Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ]
        for (i, (key, msg, want)) in cases.enumerated() {
            XCTAssertEqual(SHA256.hex(HMACSHA256.mac(key: key, message: msg)), want, "RFC 4231 case \(i + 1)")
        }
        // Case 5: output truncated to 128 bits.
        let t = HMACSHA256.mac(key: [UInt8](repeating: 0x0c, count: 20), message: Array("Test With Truncation".utf8))
        XCTAssertEqual(SHA256.hex(Array(t.prefix(16))), "a3b6167473100ee06e0c796c2955552b")
    }

    func testPBKDF2SHA256Vectors() {
        func dk(_ p: String, _ s: String, _ c: Int, _ n: Int) -> String {
            SHA256.hex(PBKDF2.sha256(password: Array(p.utf8), salt: Array(s.utf8), iterations: c, length: n))
        }
        // RFC 7914 §11.
        XCTAssertEqual(dk("passwd", "salt", 1, 64),
                       "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
        XCTAssertEqual(dk("Password", "NaCl", 80000, 64),
                       "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d")
        // RFC 6070's inputs with SHA-256 as the PRF.
        XCTAssertEqual(dk("password", "salt", 1, 32), "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")
        XCTAssertEqual(dk("password", "salt", 2, 32), "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43")
        XCTAssertEqual(dk("password", "salt", 4096, 32), "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")
        XCTAssertEqual(dk("passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 40),
                       "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9")
        XCTAssertEqual(dk("pass\u{0}word", "sa\u{0}lt", 4096, 16), "89b69d0516f829893c696226650a8687")
    }

    func testStoredPasswordHash() {
        let t0 = Date()
        let h = PasswordHash.make("correct horse battery staple")
        let seconds = Date().timeIntervalSince(t0)
        print(String(format: "PBKDF2-HMAC-SHA256, %d iterations: %.3f s", PasswordHash.defaultIterations, seconds))
        let parts = h.split(separator: "$")
        XCTAssertEqual(parts.count, 4)
        XCTAssertEqual(parts[0], "pbkdf2-sha256")
        XCTAssertEqual(Int(parts[1]), 600_000)
        XCTAssertEqual(Data(base64Encoded: String(parts[2]))?.count, 16, "16-byte salt")
        XCTAssertTrue(PasswordHash.verify("correct horse battery staple", against: h))
        XCTAssertFalse(PasswordHash.verify("correct horse battery stapl", against: h))
        XCTAssertFalse(PasswordHash.verify("", against: h))
        // Same password, fresh salt: a different hash; both verify.
        let h2 = PasswordHash.make("correct horse battery staple", iterations: 1000)
        XCTAssertNotEqual(parts[2], h2.split(separator: "$")[2])
        XCTAssertTrue(PasswordHash.verify("correct horse battery staple", against: h2))
        // The stored hash is PBKDF2 of the password with the stored salt and count.
        let p = h2.split(separator: "$")
        let want = PBKDF2.sha256(password: Array("correct horse battery staple".utf8), salt: [UInt8](Data(base64Encoded: String(p[2]))!),
                                 iterations: 1000, length: 32)
        XCTAssertEqual(Data(base64Encoded: String(p[3])).map { [UInt8]($0) }, want)
        for bad in ["", "x", "pbkdf2-sha256$0$AAAA$AAAA", "pbkdf2-sha256$10$!!$AAAA", "md5$1$AAAA$AAAA", "pbkdf2-sha256$10$AAAA$"] {
            XCTAssertFalse(PasswordHash.verify("x", against: bad), bad)
        }
    }
}
