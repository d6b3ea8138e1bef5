import { describe, expect, it } from 'vitest'
import { topicMatches } from '../../src/mqtt/topic-match.js'

describe('topicMatches', () => {
  it.each([
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/b', 'a/bc', false],
    ['a/bc', 'a/b', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/', true], // [MQTT-4.7.1-3] empty level
    ['a/+', 'a', false],
    ['a/+', 'a/b/c', false],
    ['+/+', '/x', true],
    ['+', 'a', true],
    ['+', 'a/b', false],
    ['a/#', 'a', true], // [MQTT-4.7.1-2] parent level
    ['a/#', 'a/b/c', true],
    ['a/#', 'ab', false],
    ['#', 'a/b', true],
    ['#', '/', true],
    ['+/b/#', 'x/b', true],
    ['+/b/#', 'x/c/d', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/d', false],
    ['#', '$SYS/broker', false], // [MQTT-4.7.2-1]
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
    ['$SYS/+', '$SYS/broker', true],
    ['', 'a', false],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected)
  })
})
