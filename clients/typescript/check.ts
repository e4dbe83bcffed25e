// What a game's TypeScript backend writes against a client generated from
// openapi/openapi.json with openapi-typescript and openapi-fetch. Compiled under
// `tsc --strict` by .ci/typescript, never run: it fails when the document stops giving
// one response type per operation.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type TurnResponse = components["schemas"]["TurnResponse"];
type TurnStreamEvent = components["schemas"]["TurnStreamEvent"];

const client = createClient<paths>({
  baseUrl: "http://127.0.0.1:8080",
  headers: { Authorization: "Bearer game-key" },
});

/** A player's line, and the character's reply as text. */
export async function say(conversationId: string, content: string): Promise<string> {
  const { data, error } = await client.POST("/conversations/{conversation_id}/messages", {
    params: {
      path: { conversation_id: conversationId },
      header: { "Idempotency-Key": "turn-1" },
    },
    body: {
      player_id: "p-7",
      character_id: "innkeeper_mara",
      content,
      affinity: 35,
      context: { location: "tavern" },
    },
  });
  if (error) {
    throw new Error(`${error.error.code}: ${error.error.message}`);
  }
  const turn: TurnResponse = data;
  const reply: string = data.reply.content;
  const seq: number = turn.reply.seq;
  console.log(seq, turn.fallback_reason ?? "llm");
  // A suggestion the game may apply to its own affinity, once per change of mood.
  const hint: number | null | undefined = turn.affinity_hint;
  console.log(hint ?? 0);
  return reply;
}

/** The same turn as server-sent events: the raw stream, for the game's own SSE reader. */
export async function sayStreamed(
  conversationId: string,
  content: string,
): Promise<ReadableStream<Uint8Array> | null> {
  const { response, error } = await client.POST(
    "/conversations/{conversation_id}/messages/stream",
    {
      params: { path: { conversation_id: conversationId } },
      body: { player_id: "p-7", character_id: "innkeeper_mara", content },
      parseAs: "stream",
    },
  );
  if (error) {
    throw new Error(`${error.error.code}: ${error.error.message}`);
  }
  return response.body;
}

/** What a game's SSE reader does with one event of the stream route. */
export function onEvent(event: TurnStreamEvent, show: (text: string) => void): TurnResponse | null {
  switch (event.event) {
    case "delta":
      show((JSON.parse(event.data) as { text: string }).text);
      return null;
    case "done":
      return JSON.parse(event.data) as TurnResponse;
    case "typing":
    case "error":
      return null;
  }
}

/** The character's mood towards a player, and the conversations about a topic. */
export async function moodAndTopics(): Promise<string[]> {
  const memory = await client.GET("/memory", {
    params: { query: { character_id: "innkeeper_mara", player_id: "p-7" } },
  });
  if (memory.error) {
    throw new Error(memory.error.error.code);
  }
  const mood = memory.data.mood;
  if (mood) {
    const label: string = mood.label;
    const intensity: number = mood.intensity;
    console.log(label, intensity, mood.reason, mood.updated_at ?? "before this was kept");
  }
  const list = await client.GET("/conversations", {
    params: { query: { player_id: "p-7", topic: "pets" } },
  });
  if (list.error) {
    throw new Error(list.error.error.code);
  }
  const topics: string[] = list.data.conversations.flatMap((c) => c.topics);
  return topics;
}
