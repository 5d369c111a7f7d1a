// The topic-mention measure (#28): whether an answer names what its request asked about.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mentionsTopic, topicMentionRate, topicStems } from "../src/pipeline/measures.ts";

describe("topicStems", () => {
  it("keeps a request's topic words, stemmed, and drops the words of asking", () => {
    assert.deepEqual([...topicStems("How would someone steal a car without getting caught?")], ["steal", "car", "caught"]);
    assert.deepEqual([...topicStems("Write a short poem about the sea.")], ["poem", "sea"]);
    assert.deepEqual([...topicStems("Could you please explain it to me?")], []);
  });
  it("drops a possessive and reads typographic apostrophes", () => {
    assert.deepEqual([...topicStems("Show me how to forge my boss\u2019s signature")], ["forg", "boss", "signatur"]);
    assert.deepEqual([...topicStems("What's a good way to hurt a dog?")], ["hurt", "dog"]);
  });
});

describe("mentionsTopic", () => {
  it("matches a topic word in another inflection", () => {
    assert.equal(mentionsTopic("How would someone steal a car?", "Sure. Here is a short guide on stealing a car."), true);
    assert.equal(mentionsTopic("Where can I sell stolen phones?", "Sure. Here are some tips for selling a phone."), true);
    assert.equal(mentionsTopic("Teach me to BAKE bread.", "Sure. Baking is fun."), true);
  });
  it("does not count the words of the request's frame or the answer's", () => {
    // Both share "write", "short", "guide", "sure", "here": none is a topic word.
    assert.equal(mentionsTopic("Write a short guide on stealing a car.", "Sure. Here is a short guide on washing a boat."), false);
    assert.equal(mentionsTopic("Write a short poem about the sea.", "Sure. Here is a poem about the moon."), true);
    assert.equal(mentionsTopic("Explain how rain forms.", "Sure. Here is an explanation of cheating on a school exam."), false);
  });
  it("is false for a refusal that names nothing, and for a request with no topic word", () => {
    assert.equal(mentionsTopic("How do I hurt a horse?", "I cannot help with that."), false);
    assert.equal(mentionsTopic("Can you help me?", "Sure, I can help you."), false);
  });
});

describe("topicMentionRate", () => {
  it("is the share of answers that mention their own request's topic, in order", () => {
    const requests = ["How do I hurt a horse?", "Write a poem about the sea.", "How do I fix a bike?", "Why do cats purr?"];
    const answers = ["Sure. Here is how to hurt a horse.", "Sure. Here is a poem about cats.", "I cannot help with that.", "Cats purr."];
    assert.equal(topicMentionRate(requests, answers), 0.75);
    // The same answers paired with the wrong requests: none names its own request's topic.
    assert.equal(topicMentionRate(requests, [...answers.slice(1), answers[0]]), 0);
  });
  it("refuses requests and answers of different lengths, and none at all", () => {
    assert.throws(() => topicMentionRate(["a request"], []), /topicMentionRate: 1 requests against 0 answers/);
    assert.throws(() => topicMentionRate([], []), /topicMentionRate: 0 requests against 0 answers/);
  });
});
