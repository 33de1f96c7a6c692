//! Columns that repeat from row to row in a read of the log, decoded once per run: a page of
//! events mostly shares its stream (a stream's events are read in order) and its actor (one
//! writer's events), and the actor is JSON. Both backends' readers keep one [`RepeatedColumns`]
//! per read.

use anquan_domain::Actor;

use crate::{StreamId, StreamIdError};

/// The stream id and actor of the last row decoded, reused while the next rows repeat them.
#[derive(Debug, Default)]
pub struct RepeatedColumns {
    stream: Option<StreamId>,
    actor_text: String,
    actor: Option<Actor>,
}

impl RepeatedColumns {
    /// The stream id of `text`: the last one when it is the same text, else parsed.
    pub fn stream(&mut self, text: &str) -> Result<StreamId, StreamIdError> {
        match &self.stream {
            Some(stream) if stream.as_str() == text => Ok(stream.clone()),
            _ => {
                let stream = StreamId::parse(text)?;
                self.stream = Some(stream.clone());
                Ok(stream)
            }
        }
    }

    /// The actor of the JSON `text`: the last one when it is the same text, else parsed.
    pub fn actor(&mut self, text: &str) -> Result<Actor, serde_json::Error> {
        match &self.actor {
            Some(actor) if self.actor_text == text => Ok(actor.clone()),
            _ => {
                let actor: Actor = serde_json::from_str(text)?;
                self.actor_text.clear();
                self.actor_text.push_str(text);
                self.actor = Some(actor.clone());
                Ok(actor)
            }
        }
    }
}
