/** Distinct topics remembered at once; a full memo starts over rather than tracking recency. */
export const MATCH_CACHE_TOPICS = 10_000

/**
 * Each topic's answer from a topic matcher, remembered until `forget()` (the subscriptions
 * changed). Bounded: a full memo starts over rather than tracking recency. Answers are shared
 * between callers, who only read them.
 *
 * The last answer is checked before the map: a burst from one publisher repeats its topic, and
 * several hooks ask about one message's topic in turn. A topic string fresh from the parser has
 * no hash yet; comparing it with the last one costs less than hashing it.
 */
export class TopicMemo<T> {
  #answers = new Map<string, T>()
  #generation = 0
  readonly #maxTopics: number
  #lastTopic: string | undefined
  #lastAnswer: T | undefined

  constructor(maxTopics = MATCH_CACHE_TOPICS) {
    this.#maxTopics = maxTopics
  }

  /** Changes with every forget(): an answer computed before a change must not be kept. */
  get generation(): number {
    return this.#generation
  }

  get(topic: string): T | undefined {
    if (topic === this.#lastTopic) return this.#lastAnswer
    const answer = this.#answers.get(topic)
    if (answer !== undefined) this.#remember(topic, answer)
    return answer
  }

  /** Keeps `answer` for `topic` if it was computed at `generation` (no change since). */
  set(topic: string, answer: T, generation = this.#generation): void {
    if (generation !== this.#generation) return
    if (this.#answers.size >= this.#maxTopics) this.#answers = new Map()
    this.#answers.set(topic, answer)
    this.#remember(topic, answer)
  }

  forget(): void {
    this.#generation++
    this.#lastTopic = undefined
    this.#lastAnswer = undefined
    if (this.#answers.size > 0) this.#answers = new Map()
  }

  #remember(topic: string, answer: T): void {
    this.#lastTopic = topic
    this.#lastAnswer = answer
  }
}
