//! The Merkle tree an anchor commits to: RFC 6962's (Certificate Transparency) over the log.
//!
//! The leaves are the events' chain hashes in position order; a leaf's hash is
//! `SHA-256(0x00 || leaf)` and an inner node's `SHA-256(0x01 || left || right)`, with the left
//! subtree the largest power of two smaller than the range (RFC 6962 §2.1). The tree of no
//! leaves hashes to `SHA-256("")`. An inclusion proof (audit path, §2.1.1) shows that one
//! event's chain hash is the leaf at its index of a tree of a given size and root, with
//! `ceil(log2(size))` hashes.
//!
//! [`Frontier`] keeps only the roots of the perfect subtrees of a tree (at most 64 of them),
//! so the next anchor extends the previous one's tree without reading the log again.

use sha2::{Digest, Sha256};

/// A 32-byte node of the tree.
pub type Node = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Node {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Node, right: &Node) -> Node {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the tree of no leaves: `SHA-256("")`.
pub fn empty_root() -> Node {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (`n` ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root over leaf hashes (already hashed with [`leaf_hash`]).
pub fn root_of_leaf_hashes(leaves: &[Node]) -> Node {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root_of_leaf_hashes(&leaves[..k]), &root_of_leaf_hashes(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree over `leaves` (leaf hashes), from the leaf's
/// sibling up to the root's child; `None` when `index` is not a leaf.
pub fn inclusion_proof(leaves: &[Node], index: usize) -> Option<Vec<Node>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut range, mut index) = (leaves, index);
    while range.len() > 1 {
        let k = split(range.len());
        if index < k {
            path.push(root_of_leaf_hashes(&range[k..]));
            range = &range[..k];
        } else {
            path.push(root_of_leaf_hashes(&range[..k]));
            range = &range[k..];
            index -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Checks an audit path (RFC 9162 §2.1.3.2): true when `leaf` (a leaf hash) is leaf `index` of
/// the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(leaf: &Node, index: u64, size: u64, path: &[Node], root: &Node) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == root
}

/// Every level of the tree over leaf hashes, for many inclusion proofs against one root: RFC
/// 6962's tree is the one built level by level, pairing nodes from the left and carrying a
/// lone last node up unchanged. Twice the leaves' memory.
#[derive(Debug, Clone)]
pub struct Levels {
    levels: Vec<Vec<Node>>,
}

impl Levels {
    /// Builds every level above `leaves` (leaf hashes).
    pub fn new(leaves: Vec<Node>) -> Self {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|level| level.len() > 1) {
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [lone] => *lone,
                    _ => unreachable!("chunks(2) yields one or two nodes"),
                })
                .collect();
            levels.push(above);
        }
        Levels { levels }
    }

    /// The number of leaves.
    pub fn size(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// The root.
    pub fn root(&self) -> Node {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => empty_root(),
        }
    }

    /// The audit path of leaf `index`, from its sibling up; `None` when it is not a leaf.
    pub fn proof(&self, index: usize) -> Option<Vec<Node>> {
        if index >= self.size() {
            return None;
        }
        let mut path = Vec::new();
        let mut index = index;
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(index ^ 1) {
                path.push(*sibling);
            }
            index >>= 1;
        }
        Some(path)
    }
}

/// The roots of a tree's perfect subtrees, largest (leftmost) first: enough to append leaves
/// and compute the root without the leaves themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One root per set bit of `size`, from the highest bit down.
    subtrees: Vec<Node>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// A tree of `size` leaves from its subtree roots; `None` when their number does not
    /// match `size`'s set bits.
    pub fn from_parts(size: u64, subtrees: Vec<Node>) -> Option<Self> {
        (size.count_ones() as usize == subtrees.len()).then_some(Frontier { size, subtrees })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn subtrees(&self) -> &[Node] {
        &self.subtrees
    }

    /// Appends a leaf (its data, hashed here with [`leaf_hash`]).
    pub fn push(&mut self, data: &[u8]) {
        let mut node = leaf_hash(data);
        // Merge equal-sized subtrees, like carrying in a binary counter.
        let mut size = self.size;
        while size & 1 == 1 {
            // A set bit has a subtree (from_parts and push keep one per set bit).
            let Some(left) = self.subtrees.pop() else { break };
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.subtrees.push(node);
        self.size += 1;
    }

    /// The root of the tree.
    pub fn root(&self) -> Node {
        let mut nodes = self.subtrees.iter().rev();
        let Some(last) = nodes.next() else { return empty_root() };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's reference test vectors (certificate-transparency's `merkle_tree_test`): the
    /// leaves and the roots of the trees of their first 1 to 8 leaves.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves() -> Vec<Vec<u8>> {
        LEAVES.iter().map(|leaf| hex::decode(leaf).unwrap()).collect()
    }

    #[test]
    fn the_empty_tree_is_the_hash_of_nothing() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Frontier::new().root(), empty_root());
    }

    #[test]
    fn roots_match_the_rfc_6962_vectors() {
        let data = leaves();
        let hashed: Vec<Node> = data.iter().map(|leaf| leaf_hash(leaf)).collect();
        let mut frontier = Frontier::new();
        for (n, expected) in ROOTS.iter().enumerate() {
            assert_eq!(
                hex::encode(root_of_leaf_hashes(&hashed[..=n])),
                *expected,
                "tree of {}",
                n + 1
            );
            frontier.push(&data[n]);
            assert_eq!(hex::encode(frontier.root()), *expected, "frontier of {}", n + 1);
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_no_other_does() {
        let hashed: Vec<Node> = (0u32..70).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 1..=hashed.len() {
            let root = root_of_leaf_hashes(&hashed[..size]);
            for index in 0..size {
                let path = inclusion_proof(&hashed[..size], index).unwrap();
                assert!(verify_inclusion(
                    &hashed[index],
                    index as u64,
                    size as u64,
                    &path,
                    &root
                ));
                // Another leaf, another index, another root, another size: refused.
                let other = (index + 1) % size;
                if other != index {
                    assert!(!verify_inclusion(
                        &hashed[other],
                        index as u64,
                        size as u64,
                        &path,
                        &root
                    ));
                    assert!(!verify_inclusion(
                        &hashed[index],
                        other as u64,
                        size as u64,
                        &path,
                        &root
                    ));
                }
                assert!(!verify_inclusion(
                    &hashed[index],
                    index as u64,
                    size as u64,
                    &path,
                    &[0; 32]
                ));
            }
            assert!(inclusion_proof(&hashed[..size], size).is_none());
            let levels = Levels::new(hashed[..size].to_vec());
            assert_eq!(levels.root(), root);
            for index in 0..size {
                assert_eq!(
                    levels.proof(index),
                    inclusion_proof(&hashed[..size], index),
                    "leaf {index} of {size}"
                );
            }
        }
    }

    #[test]
    fn a_frontier_continues_from_its_parts() {
        let mut frontier = Frontier::new();
        for i in 0u32..37 {
            frontier.push(&i.to_be_bytes());
        }
        let mut resumed = Frontier::from_parts(frontier.size(), frontier.subtrees().to_vec()).unwrap();
        assert!(Frontier::from_parts(36, frontier.subtrees().to_vec()).is_none());
        for i in 37u32..100 {
            frontier.push(&i.to_be_bytes());
            resumed.push(&i.to_be_bytes());
        }
        let hashed: Vec<Node> = (0u32..100).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        assert_eq!(resumed.root(), root_of_leaf_hashes(&hashed));
        assert_eq!(frontier, resumed);
    }
}
