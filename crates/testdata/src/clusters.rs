//! Clusters of duplicate contacts to seed on a platform and merge (the input of `dedupd-bench
//! merge-apply`): N clusters whose sizes cycle through 2..=max_size, each member with its own
//! e-mail and phone.

/// One member of a cluster, as it is seeded on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Cluster index.
    pub cluster: usize,
    /// Member index within the cluster.
    pub member: usize,
    /// `Bench<cluster>`, the same for every member of a cluster.
    pub first_name: String,
    /// `Merge`.
    pub last_name: String,
    /// Unique per member: how a seeded contact is told apart when results come back.
    pub email: String,
    /// E.164, unique per member.
    pub phone: String,
}

/// The size of each of `clusters` clusters: 2, 3, …, `max_size`, 2, 3, … (`max_size` ≥ 2).
pub fn sizes(clusters: usize, max_size: usize) -> Vec<usize> {
    let span = max_size.max(2) - 1;
    (0..clusters).map(|i| 2 + i % span).collect()
}

/// The e-mail of member `member` of cluster `cluster`.
pub fn email(cluster: usize, member: usize) -> String {
    format!("b{cluster}.{member}@example.org")
}

/// The first name every member of cluster `cluster` shares.
pub fn first_name(cluster: usize) -> String {
    format!("Bench{cluster}")
}

/// Every member of clusters of the given sizes, cluster by cluster.
pub fn seeds(sizes: &[usize]) -> Vec<Seed> {
    sizes
        .iter()
        .enumerate()
        .flat_map(|(c, n)| {
            (0..*n).map(move |m| Seed {
                cluster: c,
                member: m,
                first_name: first_name(c),
                last_name: "Merge".into(),
                email: email(c, m),
                phone: format!("+1202{c:05}{m:02}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cycle_and_members_are_unique() {
        assert_eq!(sizes(5, 4), vec![2, 3, 4, 2, 3]);
        assert_eq!(sizes(3, 2), vec![2, 2, 2]);
        let all = seeds(&sizes(10, 4));
        assert_eq!(all.len(), 2 + 3 + 4 + 2 + 3 + 4 + 2 + 3 + 4 + 2);
        let emails: std::collections::HashSet<_> = all.iter().map(|s| &s.email).collect();
        let phones: std::collections::HashSet<_> = all.iter().map(|s| &s.phone).collect();
        assert_eq!(emails.len(), all.len());
        assert_eq!(phones.len(), all.len());
    }
}
