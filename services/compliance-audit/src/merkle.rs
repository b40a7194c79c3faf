//! RFC 9162 §2.1 hashing over a tree whose complete subtrees are stored.
//!
//! A node is named by `(level, index)`: level 0 are the leaf hashes, the node `(l, i)` is the
//! root of the complete subtree over leaves `[i·2^l, (i+1)·2^l)`. Only complete subtrees are
//! stored (they never change once complete); the hash of any other range RFC 9162 needs is
//! folded from at most one stored node per level, so a proof reads O(log n) nodes. Proofs are
//! computed in two passes: the first records which nodes the RFC's recursion touches, the
//! caller fetches them in one read, the second computes.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// A stored node: `(level, index)`.
pub type NodeId = (u8, u64);

/// SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The hash of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old size {old} must be between 1 and the new size {new}")]
    BadSizes { old: u64, new: u64 },
    #[error("tree node ({0}, {1}) is missing from the store")]
    MissingNode(u8, u64),
}

/// Where a proof reads its nodes from.
trait Nodes {
    fn get(&mut self, id: NodeId) -> Result<Hash, ProofError>;
}

/// First pass: records what is read and answers zeros.
#[derive(Default)]
struct Recorder(Vec<NodeId>);

impl Nodes for Recorder {
    fn get(&mut self, id: NodeId) -> Result<Hash, ProofError> {
        self.0.push(id);
        Ok([0; 32])
    }
}

struct Fetched<'a>(&'a HashMap<NodeId, Hash>);

impl Nodes for Fetched<'_> {
    fn get(&mut self, id: NodeId) -> Result<Hash, ProofError> {
        self.0
            .get(&id)
            .copied()
            .ok_or(ProofError::MissingNode(id.0, id.1))
    }
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[lo:hi]) for a range the RFC's recursion produces (lo aligned to the split).
fn range_hash(nodes: &mut impl Nodes, lo: u64, hi: u64) -> Result<Hash, ProofError> {
    let n = hi - lo;
    if n.is_power_of_two() {
        let level = n.trailing_zeros() as u8;
        return nodes.get((level, lo >> level));
    }
    let k = split(n);
    let left = range_hash(nodes, lo, lo + k)?;
    let right = range_hash(nodes, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// PATH(m, D[lo:hi]) of RFC 9162 §2.1.3.1, leaf-to-root order.
fn path(nodes: &mut impl Nodes, m: u64, lo: u64, hi: u64) -> Result<Vec<Hash>, ProofError> {
    let n = hi - lo;
    if n == 1 {
        return Ok(Vec::new());
    }
    let k = split(n);
    if m < k {
        let mut proof = path(nodes, m, lo, lo + k)?;
        proof.push(range_hash(nodes, lo + k, hi)?);
        Ok(proof)
    } else {
        let mut proof = path(nodes, m - k, lo + k, hi)?;
        proof.push(range_hash(nodes, lo, lo + k)?);
        Ok(proof)
    }
}

/// SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1.
fn subproof(
    nodes: &mut impl Nodes,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
) -> Result<Vec<Hash>, ProofError> {
    let n = hi - lo;
    if m == n {
        return if whole {
            Ok(Vec::new())
        } else {
            Ok(vec![range_hash(nodes, lo, hi)?])
        };
    }
    let k = split(n);
    if m <= k {
        let mut proof = subproof(nodes, m, lo, lo + k, whole)?;
        proof.push(range_hash(nodes, lo + k, hi)?);
        Ok(proof)
    } else {
        let mut proof = subproof(nodes, m - k, lo + k, hi, false)?;
        proof.push(range_hash(nodes, lo, lo + k)?);
        Ok(proof)
    }
}

/// A proof to compute: what it reads, then the proof from what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Root { size: u64 },
    Inclusion { index: u64, size: u64 },
    Consistency { old: u64, new: u64 },
}

impl Query {
    fn check(&self) -> Result<(), ProofError> {
        match *self {
            Query::Inclusion { index, size } if index >= size => {
                Err(ProofError::IndexOutOfRange { index, size })
            }
            Query::Consistency { old, new } if old == 0 || old > new => {
                Err(ProofError::BadSizes { old, new })
            }
            _ => Ok(()),
        }
    }

    fn run(&self, nodes: &mut impl Nodes) -> Result<Vec<Hash>, ProofError> {
        self.check()?;
        match *self {
            Query::Root { size: 0 } => Ok(vec![empty_root()]),
            Query::Root { size } => Ok(vec![range_hash(nodes, 0, size)?]),
            Query::Inclusion { index, size } => path(nodes, index, 0, size),
            Query::Consistency { old, new } => subproof(nodes, old, 0, new, true),
        }
    }

    /// The stored nodes this query reads (O(log n), no duplicates).
    pub fn reads(&self) -> Result<Vec<NodeId>, ProofError> {
        let mut recorder = Recorder::default();
        self.run(&mut recorder)?;
        let mut ids = recorder.0;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The answer from the nodes [`Query::reads`] named: the root (one hash) or the proof.
    pub fn answer(&self, nodes: &HashMap<NodeId, Hash>) -> Result<Vec<Hash>, ProofError> {
        self.run(&mut Fetched(nodes))
    }
}

/// The right edge of a tree of `size` leaves: the complete subtrees that cover it, largest
/// (leftmost) first. Appending needs exactly these.
pub fn frontier(size: u64) -> Vec<NodeId> {
    (0..64u8)
        .rev()
        .filter(|level| size & (1 << level) != 0)
        .map(|level| (level, (size >> level) - 1))
        .collect()
}

/// Appends leaves to a tree held as its frontier, yielding every node that becomes complete.
#[derive(Debug, Clone)]
pub struct Appender {
    size: u64,
    /// (level, hash) of the frontier, largest first.
    stack: Vec<(u8, Hash)>,
}

impl Appender {
    /// From the frontier's hashes in [`frontier`] order.
    pub fn new(size: u64, frontier_hashes: Vec<Hash>) -> Self {
        let stack = frontier(size)
            .into_iter()
            .map(|(level, _)| level)
            .zip(frontier_hashes)
            .collect();
        Self { size, stack }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds one leaf hash; returns the new complete nodes, the leaf itself first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        let mut made = vec![((0, index), leaf)];
        self.stack.push((0, leaf));
        while self.stack.len() >= 2 {
            let (right_level, right) = self.stack[self.stack.len() - 1];
            let (left_level, left) = self.stack[self.stack.len() - 2];
            if left_level != right_level {
                break;
            }
            self.stack.truncate(self.stack.len() - 2);
            let level = right_level + 1;
            let hash = node_hash(&left, &right);
            made.push(((level, index >> level), hash));
            self.stack.push((level, hash));
        }
        self.size += 1;
        made
    }

    /// MTH of the whole tree so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.stack.iter().rev().map(|(_, h)| *h);
        let Some(mut root) = hashes.next() else {
            return empty_root();
        };
        for left in hashes {
            root = node_hash(&left, &root);
        }
        root
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ct_merkle::{
        ConsistencyProof, InclusionProof, RootHash, mem_backed_tree::MemoryBackedTree,
    };

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Builds the stored nodes of a tree of `n` leaves (leaf i = i's big-endian bytes).
    fn store(n: u64) -> (HashMap<NodeId, Hash>, Vec<Hash>) {
        let mut appender = Appender::new(0, Vec::new());
        let mut nodes = HashMap::new();
        let mut roots = vec![empty_root()];
        for i in 0..n {
            nodes.extend(appender.push(leaf_hash(&i.to_be_bytes())));
            roots.push(appender.root());
        }
        (nodes, roots)
    }

    #[test]
    fn rfc6962_reference_vectors() {
        // The eight leaves and roots of certificate-transparency's reference tests
        // (merkle_tree_test.cc), which RFC 9162 keeps unchanged.
        let leaves: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut appender = Appender::new(0, Vec::new());
        assert_eq!(
            hex(&appender.root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (leaf, root) in leaves.iter().zip(roots) {
            appender.push(leaf_hash(leaf));
            assert_eq!(hex(&appender.root()), root);
        }
    }

    #[test]
    fn roots_and_proofs_agree_with_ct_merkle_for_every_small_tree() {
        let (nodes, roots) = store(70);
        let mut reference = MemoryBackedTree::<sha2::Sha256, [u8; 8]>::new();
        for n in 1..=70u64 {
            reference.push((n - 1).to_be_bytes());
            let root = Query::Root { size: n };
            let ours = root.answer(&nodes).unwrap()[0];
            assert_eq!(ours, roots[n as usize]);
            assert_eq!(ours.as_slice(), reference.root().as_bytes().as_slice());
            let signed = RootHash::<sha2::Sha256>::new(ours.into(), n);
            for m in 0..n {
                let query = Query::Inclusion { index: m, size: n };
                assert!(query.reads().unwrap().len() <= 2 * 64);
                let proof = query.answer(&nodes).unwrap();
                let proof = InclusionProof::<sha2::Sha256>::from_digests(
                    proof.iter().map(|h| h.into()).collect::<Vec<_>>(),
                );
                signed
                    .verify_inclusion(&m.to_be_bytes(), m, &proof)
                    .unwrap_or_else(|e| panic!("inclusion {m} in {n}: {e}"));
            }
            for old in 1..=n {
                let query = Query::Consistency { old, new: n };
                let proof = query.answer(&nodes).unwrap();
                let proof = ConsistencyProof::<sha2::Sha256>::from_digests(
                    proof.iter().map(|h| h.into()).collect::<Vec<_>>(),
                );
                let old_root = RootHash::<sha2::Sha256>::new(roots[old as usize].into(), old);
                signed
                    .verify_consistency(&old_root, &proof)
                    .unwrap_or_else(|e| panic!("consistency {old}→{n}: {e}"));
            }
        }
    }

    #[test]
    fn a_proof_reads_logarithmically_many_nodes() {
        let size = 10_000_000u64;
        let reads = Query::Inclusion {
            index: 1_234_567,
            size,
        }
        .reads()
        .unwrap();
        assert!(reads.len() <= 48, "{} reads", reads.len());
        let reads = Query::Consistency {
            old: 7_654_321,
            new: size,
        }
        .reads()
        .unwrap();
        assert!(reads.len() <= 48, "{} reads", reads.len());
    }

    #[test]
    fn bad_queries_are_refused() {
        assert_eq!(
            Query::Inclusion { index: 3, size: 3 }.reads(),
            Err(ProofError::IndexOutOfRange { index: 3, size: 3 })
        );
        assert!(Query::Consistency { old: 0, new: 3 }.reads().is_err());
        assert!(Query::Consistency { old: 4, new: 3 }.reads().is_err());
        assert_eq!(
            Query::Root { size: 0 }.answer(&HashMap::new()).unwrap(),
            vec![empty_root()]
        );
    }
}
