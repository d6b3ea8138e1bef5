/** Distinct topics remembered at once; a full memo starts over rather than tracking recency. */
export const MATCH_CACHE_TOPICS = 10_000

/**
 * Each topic's answer from a topic matcher, remembered until `forget()` (the subscriptions
 * changed). Bounded: a full memo starts over rather than tracking recency. Answers are shared
 * between callers, who only read them.
 */
export class TopicMemo<T> {
  #answers = new Map<string, T>()
  #generation = 0
  readonly #maxTopics: number

  constructor(maxTopics = MATCH_CACHE_TOPICS) {
    this.#maxTopics = maxTopics
  }

  /** Changes with every forget(): an answer computed before a change must not be kept. */
  get generation(): number {
    return this.#generation
  }

  get(topic: string): T | undefined {
    return this.#answers.get(topic)
  }

  /** Keeps `answer` for `topic` if it was computed at `generation` (no change since). */
  set(topic: string, answer: T, generation = this.#generation): void {
    if (generation !== this.#generation) return
    if (this.#answers.size >= this.#maxTopics) this.#answers = new Map()
    this.#answers.set(topic, answer)
  }

  forget(): void {
    this.#generation++
    if (this.#answers.size > 0) this.#answers = new Map()
  }
}
