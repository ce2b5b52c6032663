"""ESA SNAP (s2tbx) Sentinel-2 biophysical processor networks: the upstream text tables.

Upstream: github.com/senbox-org/s2tbx, ``s2tbx-biophysical/src/main/resources/auxdata/``
(GPL-3.0; Weiss & Baret, *S2ToolBox Level 2 products: LAI, FAPAR, FCOVER*, ATBD). One folder
per variable (``LAI``, ``LAI_Cab``, ``LAI_Cw``, ``FAPAR``, ``FCOVER``) and per network version
(``2_1``; ``3_0/S2A``, ``3_0/S2B``), each holding comma-separated text files:

- ``<V>_Normalisation``: 11 rows ``min,max`` of the inputs (B3, B4, B5, B6, B7, B8A, B11, B12,
  cos(view zenith), cos(sun zenith), cos(relative azimuth)); ``x' = 2 (x - min)/(max - min) - 1``;
- ``<V>_Weights_Layer1_Neurons`` (5 x 11), ``<V>_Weights_Layer1_Bias`` (5),
  ``<V>_Weights_Layer2_Neurons`` (1 x 5), ``<V>_Weights_Layer2_Bias`` (1):
  ``y' = W2 tanh(W1 x' + b1) + b2``;
- ``<V>_Denormalisation``: ``min,max`` of the output, ``y = (y' + 1)/2 (max - min) + min``;
- ``<V>_ExtremeCases``: ``tolerance,min,max`` of the output (the tolerance's sign differs
  between versions; its absolute value is used);
- ``<V>_DefinitionDomain_MinMax`` (2 x 8: min and max of the 8 reflectances) and
  ``<V>_DefinitionDomain_Grid`` (rows of 8 cell indices): the reflectance combinations of the
  training data base. The domain files are identical for all variables of one version (and
  ``2_1/FCOVER`` has none), so the ``LAI`` ones serve every variable;
- ``<V>_TestCases`` (not used at run time): inputs and the expected output, for verification.

Only numbers are read (``numpy.loadtxt``); nothing is executed or unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..weights import WeightsError, WeightsFile, resolve

FOLDER = "snap_s2tbx"
LICENCE = "GPL-3.0"
# No upstream commit is recorded with the shared copy (its README names the repository and
# folder only), so no pinned raw URL can be given: `releo-bench weights fetch snap` cannot
# download these files; copy s2tbx's auxdata folder to $RELEO_WEIGHTS_DIR/snap_s2tbx instead.
UPSTREAM_URL = None

INPUT_BANDS = ("B3", "B4", "B5", "B6", "B7", "B8A", "B11", "B12")
INPUT_NAMES = INPUT_BANDS + ("cos_view_zenith", "cos_sun_zenith", "cos_relative_azimuth")
# upstream folder name -> (output name, unit)
VARIABLES: dict[str, tuple[str, str]] = {
    "LAI": ("lai", "m2/m2"),
    "LAI_Cab": ("ccc", "ug/cm2"),  # canopy chlorophyll LAI x Cab (ug/cm2 of ground)
    "LAI_Cw": ("cwc", "g/cm2"),  # canopy water LAI x Cw (g/cm2 of ground)
    "FAPAR": ("fapar", "-"),
    "FCOVER": ("fcover", "-"),
}
NETWORK_FILES = ("Normalisation", "Denormalisation", "Weights_Layer1_Neurons",
                 "Weights_Layer1_Bias", "Weights_Layer2_Neurons", "Weights_Layer2_Bias",
                 "ExtremeCases")
DOMAIN_FILES = ("DefinitionDomain_MinMax", "DefinitionDomain_Grid")
VERSIONS = ("2_1", "3_0")
SENSORS = ("s2a", "s2b")

# sha256 of each s2tbx auxdata file (as published upstream), per file
SHA256: dict[str, str] = {
    "2_1/LAI/LAI_Normalisation": "db9961f9303db4b2677edd5e69600f005474f3e982a5ed8980fb26e4f776e11c",
    "2_1/LAI/LAI_Denormalisation": "af92632fb58a5599c79f93798ab8af9e9a5138e33eff68a1ff68916153e44470",
    "2_1/LAI/LAI_Weights_Layer1_Neurons": "c168e24ad7faff3a372c4ab911e65aabddb327aaa0909830ee461f404cf27e6f",
    "2_1/LAI/LAI_Weights_Layer1_Bias": "68719645f81fe98396808d4ba15bb6164d595eff060b0b989b24257a80bb87cd",
    "2_1/LAI/LAI_Weights_Layer2_Neurons": "0929b4a6af3c89e4a3eb0adb4c90c43bb82b9323ffbb028e1cee10704fb31b58",
    "2_1/LAI/LAI_Weights_Layer2_Bias": "6ea9a9890d8425a64c10f822d1eded82d34d5962c350717eafd6f72b6f006027",
    "2_1/LAI/LAI_ExtremeCases": "7f9d0f6bb0a47c7a160125579e0092b581e4fd5d8fe0560dd4167c949869bcd2",
    "2_1/LAI_Cab/LAI_Cab_Normalisation": "db9961f9303db4b2677edd5e69600f005474f3e982a5ed8980fb26e4f776e11c",
    "2_1/LAI_Cab/LAI_Cab_Denormalisation": "236029f3f7c67a2e913436ab89fe22c0de53914b439f9600c53365bb71d673fd",
    "2_1/LAI_Cab/LAI_Cab_Weights_Layer1_Neurons": "45bba0221b5dbdc3c8164dd71c4f3ea3449b38ca5a6a37a39eb907080cb000a2",
    "2_1/LAI_Cab/LAI_Cab_Weights_Layer1_Bias": "9de5144690216a9ebc0c3f4178fe0cac571684f4e8b6d498f021303f36784d31",
    "2_1/LAI_Cab/LAI_Cab_Weights_Layer2_Neurons": "f6aa5ed04fc79adedfe990334e871dd3949e27681aa848e4e458e2e5b02036fc",
    "2_1/LAI_Cab/LAI_Cab_Weights_Layer2_Bias": "d087bbe336a6cd5317f1c2cb6712d97e2e536a28a98e71209c4a2d5ecb8816e0",
    "2_1/LAI_Cab/LAI_Cab_ExtremeCases": "0221f11f7351f1d3bfb55b58de5af12e24de6c8cfeca78eb53d14d3cf8b5204a",
    "2_1/LAI_Cw/LAI_Cw_Normalisation": "db9961f9303db4b2677edd5e69600f005474f3e982a5ed8980fb26e4f776e11c",
    "2_1/LAI_Cw/LAI_Cw_Denormalisation": "b6e213d2689b0326326a78d40059b62f15f71124e719d164c5e68d7d98d8f15b",
    "2_1/LAI_Cw/LAI_Cw_Weights_Layer1_Neurons": "85740263ef29bb01c6c2327a006bd95894b17ed456715e4e0f89a74b5f7d42d1",
    "2_1/LAI_Cw/LAI_Cw_Weights_Layer1_Bias": "a738ad4d583f7d30b46626dafaccbe5bea70c5ad9b0502c420998dadd16fcdde",
    "2_1/LAI_Cw/LAI_Cw_Weights_Layer2_Neurons": "1b43c87e1e4ffd5a4cf44e9687401c9eb2a55970a0bb2fc4458512af4ae8f605",
    "2_1/LAI_Cw/LAI_Cw_Weights_Layer2_Bias": "e4225d9edfb3294b64ea859ce8ad7795ec2d930760db232640f02183bc8a6e62",
    "2_1/LAI_Cw/LAI_Cw_ExtremeCases": "53776eff77b2f7514a87a774fff6be7a017f3f6477bb309075a5cbb48df232ed",
    "2_1/FAPAR/FAPAR_Normalisation": "db9961f9303db4b2677edd5e69600f005474f3e982a5ed8980fb26e4f776e11c",
    "2_1/FAPAR/FAPAR_Denormalisation": "44ab5d37b844d22c32f53178abaeccaf2c3dcbd6bbca7d2ed9deac6b993642a1",
    "2_1/FAPAR/FAPAR_Weights_Layer1_Neurons": "9658ca17416fa5c33443a6a0b4020c1b5bb61542d83b90f449009ab611cfdaf1",
    "2_1/FAPAR/FAPAR_Weights_Layer1_Bias": "46898ce15803d8437003e90a17c768ea0d67f0c0a5068403fba8379e53eb141b",
    "2_1/FAPAR/FAPAR_Weights_Layer2_Neurons": "23ed3b3dad6e59b64393583cb11e65b4f19425a5cd29783bbeed7f0180de92f5",
    "2_1/FAPAR/FAPAR_Weights_Layer2_Bias": "379fa959dd1c0b825b38f5d12d9f5070cb7b730d3b27805ffc69e7890d591ba2",
    "2_1/FAPAR/FAPAR_ExtremeCases": "4a42a567fda5859721316f05c3468150fe10c2cfac7af979671547e87b2c3ff7",
    "2_1/FCOVER/FCOVER_Normalisation": "db9961f9303db4b2677edd5e69600f005474f3e982a5ed8980fb26e4f776e11c",
    "2_1/FCOVER/FCOVER_Denormalisation": "ecdaea3c0771c908b309863aa811ed6a9b2ec0921260f84347351faa4e3b3158",
    "2_1/FCOVER/FCOVER_Weights_Layer1_Neurons": "03c9285ee122ac0aa8cfc932f5c514b4d5867fee486c5ee19934e0d896d914cd",
    "2_1/FCOVER/FCOVER_Weights_Layer1_Bias": "12a2edf99a080fa9ab1d0cdce0d3191462d12f8a27201f01540456e2ccc5a454",
    "2_1/FCOVER/FCOVER_Weights_Layer2_Neurons": "28c1edd34ff251f4af490387fb93527d809a814bf07cb6c15e58e34812f73d08",
    "2_1/FCOVER/FCOVER_Weights_Layer2_Bias": "bc6b852aa508a912dfde6ed0deb98614a7cc48c4ae96d0c1900d0164a79a4368",
    "2_1/FCOVER/FCOVER_ExtremeCases": "a5ef07ca9544ff39b5b77fa119bde5fbf74b95de80cab356e087ab8be6d6bd71",
    "2_1/LAI/LAI_DefinitionDomain_MinMax": "db68708e9657a062790035a2db44bd3ced93e3e3eadeb400f1eb8192a11f64dc",
    "2_1/LAI/LAI_DefinitionDomain_Grid": "9b063e91738f29ef9b17bb56633563a46cde40d8a88a4e5a6170e8b333afbed6",
    "3_0/S2A/LAI/LAI_Normalisation": "099813ecad905bb681f5bb48c1221f72677ce6c5516a6fe45d5aa35ac9cb5e25",
    "3_0/S2A/LAI/LAI_Denormalisation": "4de73374eb27497a3acc9a84639b1c19d1573e48d9092600dec183b0abace51d",
    "3_0/S2A/LAI/LAI_Weights_Layer1_Neurons": "1fd591cf7fea9a08a3fcc4d36c47fff8b78418ca5a7bfe2e0bd28cda1fd192ab",
    "3_0/S2A/LAI/LAI_Weights_Layer1_Bias": "c511c86d11d7a20c314d0a558b2e3c4d02ecdbfeb9d2d8c7b656a993850a1acf",
    "3_0/S2A/LAI/LAI_Weights_Layer2_Neurons": "84c026d5130eedb94f1790abbfa06b75fd858f67821b808f28620d43a11888c5",
    "3_0/S2A/LAI/LAI_Weights_Layer2_Bias": "3e5cb6220d2cce0df852fd05fc5bf4ecfe1d06819a0ba09b0117e81ebf1da2b7",
    "3_0/S2A/LAI/LAI_ExtremeCases": "8e19c7c11fcb1e83dcb1e65faf081c38cb1d73be9d410365a863c375eb387c9e",
    "3_0/S2A/LAI_Cab/LAI_Cab_Normalisation": "099813ecad905bb681f5bb48c1221f72677ce6c5516a6fe45d5aa35ac9cb5e25",
    "3_0/S2A/LAI_Cab/LAI_Cab_Denormalisation": "27efc427a20fdfc563ace92ab7e96b4141986439f0680cc022199d84ff397c50",
    "3_0/S2A/LAI_Cab/LAI_Cab_Weights_Layer1_Neurons": "ad892db02498f2f59def6f93462bf7a867e3710463f871a7bd5fa9c1dc99cb5f",
    "3_0/S2A/LAI_Cab/LAI_Cab_Weights_Layer1_Bias": "fa211bffae78061d4256b2fd459c0506b2b56167ebee95c78a5e267ebe339243",
    "3_0/S2A/LAI_Cab/LAI_Cab_Weights_Layer2_Neurons": "9d11b4d8230edf1af36735e647fa60199f20af0b3531a8de2233aebc10b98408",
    "3_0/S2A/LAI_Cab/LAI_Cab_Weights_Layer2_Bias": "9cee0e6c70d5edd6ea14ecaefb64d10dced60b35475f33a055c3fe543160e4b9",
    "3_0/S2A/LAI_Cab/LAI_Cab_ExtremeCases": "c5194530111ff2856b47cfbfe031c911093d1c9aa5c0d2cb70764be06111033d",
    "3_0/S2A/LAI_Cw/LAI_Cw_Normalisation": "099813ecad905bb681f5bb48c1221f72677ce6c5516a6fe45d5aa35ac9cb5e25",
    "3_0/S2A/LAI_Cw/LAI_Cw_Denormalisation": "327c10ec785961f6d4fadb0be21b3aea71ff44f63291f985b07ee5cc4102a32c",
    "3_0/S2A/LAI_Cw/LAI_Cw_Weights_Layer1_Neurons": "90f1a02eb773caf810407222d6c4bf0971879c661993cce920f3220795844ab4",
    "3_0/S2A/LAI_Cw/LAI_Cw_Weights_Layer1_Bias": "39b80941def24a2c162f1f62ed80964e303eb17b4f78d3c33292e3e710bf1d40",
    "3_0/S2A/LAI_Cw/LAI_Cw_Weights_Layer2_Neurons": "c16caa7a1e7d0a90d1dfb3b6f9fd19b2b4e7ede3a282401702e657609bb5b25b",
    "3_0/S2A/LAI_Cw/LAI_Cw_Weights_Layer2_Bias": "9671d3cb5e241533ce3b14f107a308598eb384e78d3ff6a8a5b8d33e10fe507f",
    "3_0/S2A/LAI_Cw/LAI_Cw_ExtremeCases": "d017336c3eeec705c564716a30517e18487d8938ae1d415e2ceabad9cbac4e51",
    "3_0/S2A/FAPAR/FAPAR_Normalisation": "099813ecad905bb681f5bb48c1221f72677ce6c5516a6fe45d5aa35ac9cb5e25",
    "3_0/S2A/FAPAR/FAPAR_Denormalisation": "7aa145bb37387afcd95efa3142837c78686adc6775569d3e4ea734c4bb1136db",
    "3_0/S2A/FAPAR/FAPAR_Weights_Layer1_Neurons": "c72ed1ef2fe8f6c3ec94becb142cfbb371fea555363e023cdc8cbc04b3500118",
    "3_0/S2A/FAPAR/FAPAR_Weights_Layer1_Bias": "a02ab5ba9f93e7b0bcc5bee9eaed77e8273f60e79f0ffb895d5ed87bd6b91036",
    "3_0/S2A/FAPAR/FAPAR_Weights_Layer2_Neurons": "bd76fa9cc931b79c657fd058293eddc869665fcfdce3d7023c86fe685ba84b36",
    "3_0/S2A/FAPAR/FAPAR_Weights_Layer2_Bias": "93e85db31df0f389ab8a54ef7dc9807b58b22bdc01e851c6b94fff1a1dd272b9",
    "3_0/S2A/FAPAR/FAPAR_ExtremeCases": "75f728ccc4edc4111d36f1b501c088d8ba31365e9f9a01992d5752e4f45c5508",
    "3_0/S2A/FCOVER/FCOVER_Normalisation": "099813ecad905bb681f5bb48c1221f72677ce6c5516a6fe45d5aa35ac9cb5e25",
    "3_0/S2A/FCOVER/FCOVER_Denormalisation": "594468b93f02b56bbd4955082ce77e38870fa49e48bea87059177810195d037c",
    "3_0/S2A/FCOVER/FCOVER_Weights_Layer1_Neurons": "572c7d3252da0ffa04a8dc6b53e5885e0b5fa3883950a3f2f61512ac2617ab80",
    "3_0/S2A/FCOVER/FCOVER_Weights_Layer1_Bias": "e78cd932b7d90d96da8fc0b48d391711e96fa716eff957c0a1549b2513552845",
    "3_0/S2A/FCOVER/FCOVER_Weights_Layer2_Neurons": "f3b86cf7ef2b30baab1e0242fb62daad417b52773f6945e74ef560a3c55ffa5b",
    "3_0/S2A/FCOVER/FCOVER_Weights_Layer2_Bias": "4ce65439590d806ee883b1610f81df09265384ebe65432749fa6b81953b573ed",
    "3_0/S2A/FCOVER/FCOVER_ExtremeCases": "7c289ab10a5b467056e58568a208c9141043421ccb2061160cbc1c16f9e73171",
    "3_0/S2A/LAI/LAI_DefinitionDomain_MinMax": "559de58f108802fe2281ee1c119b6782a29b65cf44202b4a8968d093ec7f5c33",
    "3_0/S2A/LAI/LAI_DefinitionDomain_Grid": "e1964e52a61b2f6c9ea181a1f7193713ec87b1fbb6b6885dbf26c33908980ab5",
    "3_0/S2B/LAI/LAI_Normalisation": "6c2db2f5efc0453f375648a91dba2b5884998cdc37b55c0b0636d2ffb8f6167b",
    "3_0/S2B/LAI/LAI_Denormalisation": "3e9841d795b6487fc763e7ddde9c32ccdf536208876439f97dcb072855955aa0",
    "3_0/S2B/LAI/LAI_Weights_Layer1_Neurons": "743c79581117b079cf1a6af4c37e034eda74476c6793509049d38974b577fe45",
    "3_0/S2B/LAI/LAI_Weights_Layer1_Bias": "06bec157a9c269c31b07e7eb1ec833b0f03e817bf9a6329c2143f6ee8ca5b901",
    "3_0/S2B/LAI/LAI_Weights_Layer2_Neurons": "27cf348538e08a98527227e820d46382a6f17f1713a8485e7dfcb9fe8c1a4b44",
    "3_0/S2B/LAI/LAI_Weights_Layer2_Bias": "44d343a2b94440b21d93e0904a025517884987127c774ed8a261d3e68ecefa71",
    "3_0/S2B/LAI/LAI_ExtremeCases": "8e19c7c11fcb1e83dcb1e65faf081c38cb1d73be9d410365a863c375eb387c9e",
    "3_0/S2B/LAI_Cab/LAI_Cab_Normalisation": "6c2db2f5efc0453f375648a91dba2b5884998cdc37b55c0b0636d2ffb8f6167b",
    "3_0/S2B/LAI_Cab/LAI_Cab_Denormalisation": "c67c116e0f6aaab1a4893921da68f26526d6ed3f4a9ae332b76abf2942050b02",
    "3_0/S2B/LAI_Cab/LAI_Cab_Weights_Layer1_Neurons": "87511850dd2fa97a1c1d13ca1b672a285974e483364f2ef06f7828320ade8927",
    "3_0/S2B/LAI_Cab/LAI_Cab_Weights_Layer1_Bias": "d9f78c27977f51397d7a871eb7c6741e75bfad19172f406bc06f118c0ed2bf2f",
    "3_0/S2B/LAI_Cab/LAI_Cab_Weights_Layer2_Neurons": "96dc76e3416b8cbd38272a55dd7c843f9226d7483b8ffd40a1f928ba6dfab174",
    "3_0/S2B/LAI_Cab/LAI_Cab_Weights_Layer2_Bias": "3389d4e4292e15261b045fc7b58a281eee8b576b32698260ad2fa91613e4fd9b",
    "3_0/S2B/LAI_Cab/LAI_Cab_ExtremeCases": "c5194530111ff2856b47cfbfe031c911093d1c9aa5c0d2cb70764be06111033d",
    "3_0/S2B/LAI_Cw/LAI_Cw_Normalisation": "6c2db2f5efc0453f375648a91dba2b5884998cdc37b55c0b0636d2ffb8f6167b",
    "3_0/S2B/LAI_Cw/LAI_Cw_Denormalisation": "8eeb84554964acffbc7f103664996723fb40db49485f0ec495c2b074c5704ea8",
    "3_0/S2B/LAI_Cw/LAI_Cw_Weights_Layer1_Neurons": "99a5959a7f68cbc0f6bfd27919d77d9c5212713276985029de7a8e7b11379b24",
    "3_0/S2B/LAI_Cw/LAI_Cw_Weights_Layer1_Bias": "94791b66cfa6305263a30c3a174ceb66e97eaa7b485b3281c328fa0da99c9bdd",
    "3_0/S2B/LAI_Cw/LAI_Cw_Weights_Layer2_Neurons": "ac8464840cb6193de224a3257a3499b79244bf072d2e362938442a6d0083d6cb",
    "3_0/S2B/LAI_Cw/LAI_Cw_Weights_Layer2_Bias": "19311460ce5ddf25adeceadf7462c10ec1b7437c931048aa4d28ac3ead6d4885",
    "3_0/S2B/LAI_Cw/LAI_Cw_ExtremeCases": "53776eff77b2f7514a87a774fff6be7a017f3f6477bb309075a5cbb48df232ed",
    "3_0/S2B/FAPAR/FAPAR_Normalisation": "6c2db2f5efc0453f375648a91dba2b5884998cdc37b55c0b0636d2ffb8f6167b",
    "3_0/S2B/FAPAR/FAPAR_Denormalisation": "a70bd44ab56a3e725af5e75de6b3dd54564c449d8ccbc536ce45bf872dd4f2dd",
    "3_0/S2B/FAPAR/FAPAR_Weights_Layer1_Neurons": "e7b8f5f8e4a6600eac24d6e70d5fc8fdf5c8e9bba56b8b26223c49a05e3c6171",
    "3_0/S2B/FAPAR/FAPAR_Weights_Layer1_Bias": "ac6fdc37aa088efaceca3df26b817915041c3dd08e8fa1e64daf0b71a9cf5d68",
    "3_0/S2B/FAPAR/FAPAR_Weights_Layer2_Neurons": "23a9da79d249ae2b487996f947921a734d8966ae1568891d981b25a5b7bf6213",
    "3_0/S2B/FAPAR/FAPAR_Weights_Layer2_Bias": "ed3cf867bda577925fae41cc7320b5d2e31a550ebf6890f3878fa32526bc6582",
    "3_0/S2B/FAPAR/FAPAR_ExtremeCases": "75f728ccc4edc4111d36f1b501c088d8ba31365e9f9a01992d5752e4f45c5508",
    "3_0/S2B/FCOVER/FCOVER_Normalisation": "6c2db2f5efc0453f375648a91dba2b5884998cdc37b55c0b0636d2ffb8f6167b",
    "3_0/S2B/FCOVER/FCOVER_Denormalisation": "712ada69ecad2fbd0aecf9748748a96f25c09fcad8fc7bdd216b29b925916d09",
    "3_0/S2B/FCOVER/FCOVER_Weights_Layer1_Neurons": "45c2caaa0203b05d9884797c9acaf961d3384b2212b14386a73a3501b2184b52",
    "3_0/S2B/FCOVER/FCOVER_Weights_Layer1_Bias": "80c80fcf5f9d12555545ae8754ccf91235b981e239b93ef167ee2ed24a50307d",
    "3_0/S2B/FCOVER/FCOVER_Weights_Layer2_Neurons": "eb963c1afdac8212a762594307a93bcaa448e7d371666c141cce7b2febed21bf",
    "3_0/S2B/FCOVER/FCOVER_Weights_Layer2_Bias": "49bf0e65a0052db130d290490bfc8e5c547c69aeacf01e2ed4126a642c5dc8e6",
    "3_0/S2B/FCOVER/FCOVER_ExtremeCases": "7c289ab10a5b467056e58568a208c9141043421ccb2061160cbc1c16f9e73171",
    "3_0/S2B/LAI/LAI_DefinitionDomain_MinMax": "826c0ad82b93a91cdb3f6150358db50e950a56f5823f5d1b2a83b512253827d8",
    "3_0/S2B/LAI/LAI_DefinitionDomain_Grid": "e04fb051fe9e27a03106974f7083f79150e05c85f15d18b72172b3ec0d29814f",
}


def subfolder(version: str, sensor: str = "s2a") -> str:
    """``2_1`` or ``3_0/S2A`` / ``3_0/S2B`` (the sensor matters for ``3_0`` only)."""
    if version not in VERSIONS:
        raise ValueError(f"SNAP network version must be one of {VERSIONS}, got {version!r}")
    if sensor not in SENSORS:
        raise ValueError(f"SNAP sensor must be one of {SENSORS}, got {sensor!r}")
    return "2_1" if version == "2_1" else f"3_0/{sensor.upper()}"


def files_for(version: str, sensor: str = "s2a") -> list[str]:
    """Paths (inside :data:`FOLDER`) of the files one network set needs."""
    sub = subfolder(version, sensor)
    out = [f"{sub}/{v}/{v}_{k}" for v in VARIABLES for k in NETWORK_FILES]
    return out + [f"{sub}/LAI/LAI_{k}" for k in DOMAIN_FILES]


def weights_files(model: str = "snap") -> tuple[WeightsFile, ...]:
    """One :class:`WeightsFile` per file of every version (2_1, 3_0/S2A, 3_0/S2B)."""
    return tuple(WeightsFile(model=model, folder=FOLDER, filename=name, licence=LICENCE,
                             sha256=digest, url=UPSTREAM_URL)
                 for name, digest in SHA256.items())


@dataclass(frozen=True)
class Network:
    """One SNAP network: 11 inputs -> 5 tansig hidden units -> 1 linear output."""

    variable: str  # upstream folder name, e.g. "LAI_Cab"
    in_min: np.ndarray  # [11]
    in_max: np.ndarray  # [11]
    w1: np.ndarray  # [5, 11]
    b1: np.ndarray  # [5]
    w2: np.ndarray  # [5]
    b2: float
    out_min: float
    out_max: float
    tolerance: float
    valid_min: float
    valid_max: float

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The network output before the extreme-case handling, ``[N, 11] -> [N]`` (numpy)."""
        xn = 2.0 * (x - self.in_min) / (self.in_max - self.in_min) - 1.0
        h = np.tanh(xn @ self.w1.T + self.b1)
        y = h @ self.w2 + self.b2
        return 0.5 * (y + 1.0) * (self.out_max - self.out_min) + self.out_min


@dataclass(frozen=True)
class Domain:
    """Definition domain of the 8 reflectances: min/max and the occupied grid cells."""

    ref_min: np.ndarray  # [8]
    ref_max: np.ndarray  # [8]
    cells: np.ndarray  # [M, 8] int cell indices

    def cell_index(self, refl: np.ndarray) -> np.ndarray:
        """Cell of each reflectance vector: ``floor(10 (x - min)/(max - min)) + 1``, ``[N, 8]``."""
        return np.floor(10.0 * (refl - self.ref_min) / (self.ref_max - self.ref_min)).astype(np.int64) + 1

    def outside(self, refl: np.ndarray) -> np.ndarray:
        """True where a reflectance vector ``[N, 8]`` is outside ``[min, max]`` or falls in a
        grid cell that holds no case of the training data base."""
        refl = np.asarray(refl, dtype=np.float64)
        out_range = ((refl < self.ref_min) | (refl > self.ref_max)).any(axis=1)
        idx = self.cell_index(np.clip(refl, self.ref_min, self.ref_max))
        known = {tuple(r) for r in self.cells.tolist()}
        in_grid = np.array([tuple(r) in known for r in idx.tolist()], dtype=bool)
        return out_range | ~in_grid


def _load(path: Path, ndmin: int = 1) -> np.ndarray:
    try:
        return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=ndmin)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"snap: cannot read the SNAP table {path}: {exc}") from exc


def _path(name: str, folder: str | Path | None, model: str) -> Path:
    file = WeightsFile(model=model, folder=FOLDER, filename=name, licence=LICENCE,
                       sha256=SHA256[name], url=UPSTREAM_URL)
    return resolve(file, folder)


def load_network(variable: str, version: str, sensor: str = "s2a",
                 folder: str | Path | None = None, model: str = "snap") -> Network:
    """Parse (and sha256-check) one network; ``folder`` as ``resolve``'s explicit path."""
    if variable not in VARIABLES:
        raise ValueError(f"unknown SNAP variable {variable!r}; expected one of {list(VARIABLES)}")
    sub = subfolder(version, sensor)
    t = {k: _load(_path(f"{sub}/{variable}/{variable}_{k}", folder, model)) for k in NETWORK_FILES}
    norm = t["Normalisation"].reshape(-1, 2)
    w1 = _load(_path(f"{sub}/{variable}/{variable}_Weights_Layer1_Neurons", folder, model), 2)
    den, ext = t["Denormalisation"].ravel(), t["ExtremeCases"].ravel()
    net = Network(variable=variable, in_min=norm[:, 0], in_max=norm[:, 1], w1=w1,
                  b1=t["Weights_Layer1_Bias"].ravel(), w2=t["Weights_Layer2_Neurons"].ravel(),
                  b2=float(t["Weights_Layer2_Bias"].ravel()[0]), out_min=float(den[0]),
                  out_max=float(den[1]), tolerance=abs(float(ext[0])), valid_min=float(ext[1]),
                  valid_max=float(ext[2]))
    n_in, n_hidden = len(INPUT_NAMES), net.b1.shape[0]
    if net.in_min.shape != (n_in,) or net.w1.shape != (n_hidden, n_in) or net.w2.shape != (n_hidden,) \
            or den.shape != (2,) or ext.shape != (3,):
        raise WeightsError(f"snap: unexpected table shapes in {sub}/{variable} (normalisation "
                           f"{norm.shape}, layer 1 {net.w1.shape}, layer 2 {net.w2.shape})")
    return net


def load_domain(version: str, sensor: str = "s2a", folder: str | Path | None = None,
                model: str = "snap") -> Domain:
    sub = subfolder(version, sensor)
    mm = _load(_path(f"{sub}/LAI/LAI_DefinitionDomain_MinMax", folder, model), 2)
    grid = _load(_path(f"{sub}/LAI/LAI_DefinitionDomain_Grid", folder, model), 2)
    if mm.shape != (2, len(INPUT_BANDS)) or grid.shape[1] != len(INPUT_BANDS):
        raise WeightsError(f"snap: unexpected definition-domain shapes in {sub} ({mm.shape}, "
                           f"{grid.shape})")
    return Domain(ref_min=mm[0], ref_max=mm[1], cells=grid.astype(np.int64))
