import { describe, expect, it } from 'vitest'
import { templateToFilter, topicFilterProblem, topicMatches } from './topics.js'

describe('topics', () => {
  it('matches MQTT filters', () => {
    expect(topicMatches('a/+/c', 'a/b/c')).toBe(true)
    expect(topicMatches('a/#', 'a')).toBe(true)
    expect(topicMatches('a/#', 'a/b/c')).toBe(true)
    expect(topicMatches('a/+', 'a/b/c')).toBe(false)
    expect(topicMatches('#', '$SYS/x')).toBe(false)
    expect(topicMatches('$share/g/a/+', 'a/b')).toBe(true)
  })

  it('turns templates into filters and validates filters', () => {
    expect(templateToFilter('sensors/{deviceId}/temp/dev-{index}')).toBe('sensors/+/temp/+')
    expect(topicFilterProblem('a/b+')).toMatch(/whole level/)
    expect(topicFilterProblem('a/#')).toBeUndefined()
  })
})
