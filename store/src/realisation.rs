//! Realisations: `recipe id → output path` records in the store database, so an
//! unchanged recipe is not rebuilt (and bit-identical outputs give early cutoff).
use std::fmt;
use std::str::FromStr;

use crate::error::StoreError;
use crate::hash::hex;

/// The id of a recipe: BLAKE3 over its canonical encoding (computed by the build code).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipeId(pub [u8; 32]);

impl fmt::Display for RecipeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for RecipeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipeId({self})")
    }
}

impl FromStr for RecipeId {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<RecipeId, StoreError> {
        hex::decode32(text)
            .map(RecipeId)
            .ok_or_else(|| StoreError::BadRecipeId {
                text: text.to_string(),
            })
    }
}

impl From<[u8; 32]> for RecipeId {
    fn from(bytes: [u8; 32]) -> RecipeId {
        RecipeId(bytes)
    }
}

impl serde::Serialize for RecipeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for RecipeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

use crate::error::Result;
use crate::path::StorePath;
use crate::store::Store;

impl Store {
    /// Records that `recipe` builds `output` (replacing an earlier record). `output` must be valid.
    pub fn set_realisation(&self, recipe: &RecipeId, output: &StorePath) -> Result<()> {
        let _shared = self.shared_lock()?;
        if !self.is_valid(output) {
            self.check_path(output)?;
            return Err(StoreError::NotValid {
                path: output.to_string(),
            });
        }
        self.db.set_realisation(recipe, output)
    }

    /// The output recorded for `recipe`, if there is one and it is still valid.
    pub fn realisation(&self, recipe: &RecipeId) -> Option<StorePath> {
        let text = self.db.realisation(recipe).ok()??;
        let path = StorePath::parse(&text).ok()?;
        self.is_valid(&path).then_some(path)
    }
}
