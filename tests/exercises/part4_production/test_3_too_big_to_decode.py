"""Part 4, exercise 3: refuse an image too big to decode.

The decode budget (--decode_budget, make_app's `decode_budget`) lets an image that
needs more than all of it be decoded alone, the others waiting. An image whose
decoding_cost() is over TWICE the budget is refused instead, before it is decoded:
a 400 whose message says it is "too big to decode", and nothing stored (fs.files,
fs.chunks and uploads as before the upload), by the form (POST /upload) as by PUT /upload/.
An image that needs up to twice the budget is stored as before.
"""

from coursekit.clients import answer
from coursekit.images import image_bytes

RUNS_ON = ["part4_production"]

MB = 1024**2
# An RGB PNG of 2000 x 2000 takes 8 MB (the decoders' buffers) + 4 bytes a pixel:
# 24 MB to decode, in a file of some kilobytes.
BIG = image_bytes("PNG", size=(2000, 2000), color="teal")
COST = 8 * MB + 2000 * 2000 * 4


async def test_only_images_over_twice_the_budget_are_refused(serve):
    client = await serve(decode_budget=COST // 2 - MB)  # twice the budget: 22 MB
    for response, how in [(await client.upload(BIG, "big.png"), "POST /upload"),
                          (await client.fetch("/upload/big.png", "PUT", BIG), "PUT /upload/big.png")]:
        assert response.code == 400 and "too big to decode" in answer(response), (
            f'{how} of an image needing 24 MB to decode, with a budget of 11 MB, should be refused: a 400 '
            f'saying it is "too big to decode"; it answered {answer(response)}')
        stored = await client.stored()
        assert stored == {"fs.files": 0, "fs.chunks": 0, "uploads": 0}, (
            f"an image refused leaves nothing in the database; after {how}, it holds {stored}")
    small = await client.upload(image_bytes("PNG", size=(40, 30)), "small.png")
    assert small.code == 302, f"a small image is stored as before (302); it answered {answer(small)}"

    client = await serve(decode_budget=COST // 2 + MB)  # twice the budget: 26 MB
    response = await client.upload(BIG, "big.png")
    assert response.code == 302, (
        f"an image needing 24 MB to decode, with a budget of 13 MB, is stored (302); it answered {answer(response)}")
    stored = await client.db.uploads.find_one({"filename": "big.png"})
    assert stored and (stored["width"], stored["height"]) == (2000, 2000), f"it is listed as an image: {stored}"
