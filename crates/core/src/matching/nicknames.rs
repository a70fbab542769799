//! Given-name equivalence groups: nicknames, short forms and spelling variants that people use
//! for the same given name, across the languages of dedupd's users (English, German, French,
//! Spanish). A name may belong to several groups (`chris` is short for Christopher, Christine and
//! Christian); two names are equivalent when they share a group.
//!
//! Names are in the matcher's folded form: lowercase ASCII without diacritics.

use std::sync::LazyLock;

use rustc_hash::FxHashMap;

/// One group per line, space-separated.
const GROUPS: &str = "\
abigail abby abbie gail
alexander alex alec sandy xander alejandro alexandre
alexandra alex alexa sandra sandy alejandra alexandrine
alfred alf alfie fred freddie
allison alison ali allie
amanda mandy manda
andrew andy drew andreas andre andres
angela angie angelika angelique
anna ann anne annie hannah anja anita nancy
anthony tony antonio antoine anton toni
arthur art artie
barbara barb barbie babs
benjamin ben benny benji
bernard bernie bernd bernardo
beth elizabeth
catherine cathy kate katie cat kathryn katherine kathy kat katharina katrin kathrin catalina caterina
charles charlie chuck chas carl carlos karl charly
christina christine chris tina kristina kristin christiane
christopher chris topher kit cristobal christoph
christian chris christiano cristian
cynthia cindy
daniel dan danny dani
david dave davy
deborah debbie deb debra
donald don donnie
dorothy dot dottie dora
douglas doug
edward ed eddie ted ned eduardo edouard
eleanor ellie nell nora elly
elizabeth liz lizzie beth betty betsy eliza elisa elise lisa libby elisabeth isabel isabelle lissy
emily em emmy emilie emilia
eugene gene
francis frank frankie fran francisco paco curro pancho francois franz
frances fran frankie francesca francoise franziska
frederick fred freddie fritz friedrich federico
gabriel gabe gaby gabriele
gabrielle gaby gabi gabriela
gerald gerry jerry gerd gerhard
gregory greg
guillermo guille memo william
harold harry hal
henry hank harry hal heinz heinrich henri enrique kike
isabel isabella bella izzy isabelle
jacob jake jakob jacobo
james jim jimmy jamie jaime diego
janet jan jenny
jeffrey jeff geoffrey
jennifer jen jenny jenn
jessica jess jessie
john jack johnny jon hans johannes juan jean jan jonathan
jonathan jon jonny nathan
jose pepe josep chema joseph
joseph joe joey jo jose josef
joshua josh
judith judy jutta
katherine kate kathy katie kay kitty
kenneth ken kenny
lawrence larry laurence lorenzo laurent
leonard leo len lenny leon
lucas luke luc lukas
margaret maggie meg peggy marge margie greta gretchen margarete margarita marguerite rita
maria mary marie mia mari mimi
mary molly polly mae
matthew matt matty mathieu matthias mateo
maximilian max maxi
michael mike mikey mick micky michel miguel michi
nicholas nick nicky nico nicolas klaus niklas
patricia pat patty tricia trish patrizia
patrick pat paddy patricio
peter pete pierre pedro
philip phil pip philippe felipe philipp
rebecca becky becca
richard rich rick ricky dick rico ricardo
robert rob bob bobby robbie bert roberto
ronald ron ronnie
samuel sam sammy
samantha sam sammy
sebastian seb basti sebastien
stephanie steph stefanie stephanie
stephen steve stevie steven stefan esteban etienne
susan sue susie suzanne susanne suzy
theodore ted teddy theo
thomas tom tommy thom tomas
timothy tim timmy
valerie val
victoria vicky tori viktoria
vincent vince vinny vicente
walter walt wally
william will bill billy willy liam wilhelm willi guillaume
wolfgang wolf
zachary zach zack
ignacio nacho
manuel manolo manu
dolores lola
concepcion concha conchi
guadalupe lupe
rosario charo
mercedes merche
jesus chuy
antonia toni
josefa pepa
ernesto neto
alberto beto
roberto beto
eduardo lalo
";

static INDEX: LazyLock<FxHashMap<&'static str, Vec<u16>>> = LazyLock::new(|| {
    let mut map: FxHashMap<&'static str, Vec<u16>> = FxHashMap::default();
    for (gid, line) in GROUPS.lines().enumerate() {
        let gid = u16::try_from(gid + 1).unwrap_or(u16::MAX);
        for name in line.split_whitespace() {
            let groups = map.entry(name).or_default();
            if !groups.contains(&gid) {
                groups.push(gid);
            }
        }
    }
    map
});

/// The groups a folded given name belongs to (empty when it has none).
pub fn groups(name: &str) -> &'static [u16] {
    INDEX.get(name).map(Vec::as_slice).unwrap_or(&[])
}

/// Whether two folded given names are nicknames or variants of each other.
pub fn equivalent(a: &str, b: &str) -> bool {
    let (ga, gb) = (groups(a), groups(b));
    ga.iter().any(|g| gb.contains(g))
}

/// A blocking token for a given name: its first group, so that `Bill` and `William` meet.
pub fn canonical_group(name: &str) -> Option<u16> {
    groups(name).first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_pairs_are_equivalent() {
        assert!(equivalent("bill", "william"));
        assert!(equivalent("william", "bill"));
        assert!(equivalent("curro", "francisco"));
        assert!(equivalent("chris", "christine"));
        assert!(equivalent("chris", "christopher"));
        assert!(!equivalent("christine", "christopher"));
        assert!(!equivalent("anna", "bob"));
        assert!(!equivalent("zzz", "zzz"), "unknown names have no group");
    }

    #[test]
    fn groups_are_deduplicated() {
        // `stephanie` is listed twice on its line.
        assert_eq!(
            groups("stephanie").len(),
            groups("stephanie")
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }
}
